"""A fit's renders, through the job database and workers like any run (so a farm speeds a fit
up): each candidate's clean renders are one run of the same characters and views, named by a
hash of what it renders. Camera effects are applied here to the clean renders, drawn from the
candidate's config exactly as a worker draws and applies them, so candidates that differ only in
camera effects share one run."""

from __future__ import annotations

import hashlib
import io
import json
import time

import numpy as np
from PIL import Image
from sqlalchemy import select

from synthreid.errors import JobError
from synthreid.farm.db import characters, connect, images, runs
from synthreid.farm.export import verified_mask
from synthreid.farm.plan import plan_run
from synthreid.farm.storage import Storage
from synthreid.farm.supervisor import render_run, run_status
from synthreid.progress import Reporter
from synthreid.render.effects import apply_effects
from synthreid.scene.config import GenerationConfig
from synthreid.scene.sampling import sample_images
from synthreid.scene.spec import CharacterSpec


def clean(config: GenerationConfig) -> GenerationConfig:
    return config.model_copy(update={"camera_effects": None})


class CandidateRenders:
    """Renders the clean runs candidates need and hands back their crops with effects."""

    def __init__(self, db_url: str, storage_url: str, characters_count: int, images_count: int,
                 seed: int, workers: int | None = None, progress: Reporter | None = None) -> None:
        self.db_url, self.storage_url = db_url, storage_url
        self.characters, self.images, self.seed = characters_count, images_count, seed
        self.workers, self.progress = workers, progress
        self.engine = connect(db_url)

    def run_name(self, config: GenerationConfig) -> str:
        what = {"config": clean(config).model_dump(mode="json"), "seed": self.seed,
                "characters": self.characters, "images": self.images}
        return "fit-" + hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    def _finished(self, name: str) -> bool:
        with self.engine.connect() as connection:
            run = connection.execute(select(runs.c.id).where(runs.c.name == name)).scalar()
        if run is None:
            return False
        status = run_status(self.engine, run)
        return status.planned_whole and status.outstanding == 0 and \
            not status.jobs.get("failed")

    def ensure(self, configs: list[GenerationConfig]) -> tuple[int, float]:
        """Plan and render every run these candidates need that is not rendered yet; returns
        (runs rendered now, seconds)."""
        started = time.perf_counter()
        needed = {self.run_name(c): clean(c) for c in configs}
        missing = {name: c for name, c in needed.items() if not self._finished(name)}
        if not missing:
            return 0, 0.0
        for name, config in missing.items():
            plan_run(self.engine, name, config, self.characters, self.images, self.seed)
        # Only these runs: a database shared with a farm keeps its other runs for their own
        # workers and storage.
        status = render_run(self.db_url, self.storage_url, self.workers, run=list(missing),
                            progress=self.progress)
        if status.jobs.get("failed"):
            raise JobError(f"fit: {status.jobs['failed']} characters failed to render "
                           f"(synthreid status --db {self.db_url} shows why)")
        return len(missing), time.perf_counter() - started

    def crops(self, config: GenerationConfig) -> list[np.ndarray]:
        """The candidate's crops: its clean renders with its own camera effects applied."""
        storage = Storage(self.storage_url, create=False)
        name = self.run_name(config)
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(characters.c.spec, images.c.index, images.c.storage_key,
                       images.c.sha256, images.c.record)
                .join(images, images.c.character_id == characters.c.id)
                .join(runs, runs.c.id == characters.c.run_id)
                .where(runs.c.name == name, images.c.status == "done")
                .order_by(characters.c.index, images.c.index)).mappings().all()
        if not rows:
            raise JobError(f"fit: run {name} has no rendered images")
        views: dict[int, list] = {}
        crops = []
        for row in rows:
            rgb = np.asarray(Image.open(io.BytesIO(storage.read_verified(
                row["storage_key"], row["sha256"]))).convert("RGB"))
            if config.camera_effects is not None:
                spec = CharacterSpec.model_validate(row["spec"])
                if spec.seed not in views:
                    views[spec.seed] = sample_images(config, spec, self.images)
                _, mask = verified_mask(storage, row["storage_key"].removesuffix(".png")
                                        + ".mask.png", row["record"])
                rgb, _ = apply_effects(rgb, mask, views[spec.seed][row["index"]].effects)
            crops.append(rgb)
        return crops
