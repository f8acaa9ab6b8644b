"""Training any refiner method (CycleGAN, PTGAN, CUT: thesis 2.2; the methods are
`cyclegan.py`, `ptgan.py`, `cut.py`) with what they share: unpaired batches of the two training
splits, Adam 2e-4 (0.5, 0.999) for the generator side and for the critics, constant then
linearly decayed to zero, a pool of 50 past fakes per discriminator, sample grids, logs, and
every `checkpoint_every` iterations a `last.pt` holding everything (networks, optimizers,
pools, losses), so `--resume` continues exactly.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthreid import atomic, run_folder
from synthreid.datasets import open_dataset
from synthreid.device import Compute, compute
from synthreid.errors import RefineError
from synthreid.progress import Reporter, report
from synthreid.refine import losses
from synthreid.refine.config import RefinerConfig
from synthreid.refine.cut import CUT
from synthreid.refine.cyclegan import CycleGAN
from synthreid.refine.data import Domain, to_image, training_records
from synthreid.refine.identity import IdentityProbe, choose_checkpoint, keeps_identity
from synthreid.refine.method import RefinerMethod
from synthreid.refine.networks import CHANNELS_LAST
from synthreid.refine.pool import ImagePool
from synthreid.refine.ptgan import PTGAN
from synthreid.refine.realism import RealismMeter
from synthreid.refine.spgan import SPGAN
from synthreid.seeds import RunStream
from synthreid.torch_files import read_torch_file, save_checkpoint
from synthreid.typed import dump_config

METHODS: dict[str, type[RefinerMethod]] = {"cyclegan": CycleGAN, "ptgan": PTGAN, "cut": CUT,
                                           "spgan": SPGAN}
RUN_FILES = ("config.yaml", "last.pt", "losses.csv", "samples", "tensorboard", "chosen.pt",
             "checkpoints.csv", "choice.json", "identity-judge.pt")
REALISM_IMAGES = 200  # target training images the realism distance compares against
SAMPLES = 4  # images per row of the sample grid


class RefinerTrainer:
    def __init__(self, config: RefinerConfig, arithmetic: Compute | None = None) -> None:
        self.config = config
        self.out = Path(config.out)
        self.arithmetic = arithmetic or compute(channels_last=CHANNELS_LAST)
        self.device = self.arithmetic.device
        torch.manual_seed(config.seed)
        keep = config.aspect == "keep"
        self.a = Domain(training_records(config.source), config.height, config.width, keep)
        self.b = Domain(training_records(config.target), config.height, config.width, keep)
        if (config.method == "ptgan" or config.colour_weight > 0) and not self.a.has_masks:
            what = "PTGAN" if config.method == "ptgan" else "colour_weight > 0"
            raise RefineError(f"{config.source}: {what} needs person masks for the generated "
                              f"images (an export's masks/ folder)")
        self.method = METHODS[config.method](config, self.device)
        for network in self.method.networks.values():
            self.arithmetic.module(network)
        betas = (config.beta1, 0.999)
        self.opt_G = torch.optim.Adam(self.method.generator_side(), lr=config.lr, betas=betas)
        self.opt_D = torch.optim.Adam(
            [p for critic in self.method.critics() for p in critic.parameters()], lr=config.lr,
            betas=betas)
        self.pools = {"A": ImagePool(config.pool_size), "B": ImagePool(config.pool_size)}
        self.iteration, self.history = 0, []
        self.checkpoint_rows: list[dict] = []  # identity and realism of every checkpoint
        self.probe: IdentityProbe | None = None  # built when training starts (trains a judge)
        self.opened = False

    @property
    def G(self) -> torch.nn.Module:
        return self.method.G

    def _checkpointed(self) -> dict:
        return {**self.method.networks, "opt_G": self.opt_G, "opt_D": self.opt_D}

    def open(self, resume: bool = False, overwrite: bool = False) -> bool:
        existing = run_folder.existing_run(self.out, RUN_FILES)
        resuming = run_folder.settle(self.out, existing, self.config.model_dump(mode="json"),
                                     resume, overwrite, RefineError)
        resumed = resuming and self._load_last()
        atomic.write_text(self.out / "config.yaml", dump_config(self.config))
        self.opened = True
        return resumed

    def _load_last(self) -> bool:
        path = self.out / "last.pt"
        if not path.exists():
            return False
        state = read_torch_file(path, "refiner checkpoint", RefineError)
        for name, part in self._checkpointed().items():
            part.load_state_dict(state[name])
        for side, pool in self.pools.items():
            pool.load(state[f"pool_{side}"], self.device)
        self.iteration, self.history = state["iteration"], state["history"]
        self.checkpoint_rows = state.get("checkpoint_rows", [])
        return True

    def lr_factor(self, iteration: int) -> float:
        """1 until `decay_from` of the run, then linearly down to 0 at the last iteration."""
        start = int(self.config.decay_from * self.config.iterations)
        if iteration < start:
            return 1.0
        return max(0.0, 1.0 - (iteration - start) / max(self.config.iterations - start, 1))

    def step(self, iteration: int) -> dict[str, float]:
        """One update of the generator side, then of the critics; the loss terms as floats."""
        config = self.config
        for optimizer in (self.opt_G, self.opt_D):
            for group in optimizer.param_groups:
                group["lr"] = config.lr * self.lr_factor(iteration)
        rng = np.random.default_rng([config.seed, iteration])
        a, mask_a = (self.arithmetic.images(t) if t is not None else None
                     for t in self.a.batch(rng, config.batch_size, config.flip))
        b, mask_b = (self.arithmetic.images(t) if t is not None else None
                     for t in self.b.batch(rng, config.batch_size, config.flip))
        critics = self.method.critics()
        for critic in critics:
            critic.requires_grad_(False)
        with self.arithmetic.autocast():
            terms, fakes = self.method.generator_terms(a, mask_a, b, mask_b, rng)
            if config.colour_weight > 0:
                terms["colour_A"] = config.colour_weight * losses.masked_colour(
                    fakes["fake_b"], a, mask_a)
            loss_G = sum(terms.values())
        self._finite(loss_G, iteration, "generator side")
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        for critic in critics:
            critic.requires_grad_(True)
        with self.arithmetic.autocast():
            judged = self.method.critic_terms(a, b, fakes, self.pools, rng)
            loss_D = sum(judged.values())
        self._finite(loss_D, iteration, "discriminators")
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()
        return {name: float(value.detach()) for name, value in {**terms, **judged}.items()}

    def _finite(self, loss: torch.Tensor, iteration: int, what: str) -> None:
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RefineError(f"iteration {iteration}: the loss of the {what} is {value}; "
                              f"training diverged (try a lower --lr); {self.out / 'last.pt'} "
                              f"holds the last checkpoint")

    def fit(self, progress: Reporter | None = None) -> dict:
        """Train to the last iteration; `progress` hears of every iteration, with the last
        logged losses as values."""
        if not self.opened:
            self.open()
        writer = run_folder.tensorboard(self.out)
        if self.config.identity_check and self.probe is None:
            report(progress, "identity judge", 0, 1)
            self.probe = self._identity_probe()
        window: list[dict[str, float]] = []
        started = time.perf_counter()
        for iteration in range(self.iteration, self.config.iterations):
            window.append(self.step(iteration))
            self.iteration = iteration + 1
            if self.iteration % self.config.log_every == 0 or \
                    self.iteration == self.config.iterations:
                row = {"iteration": self.iteration,
                       **{k: float(np.mean([w[k] for w in window])) for k in window[0]}}
                self.history.append(row)
                window = []
                run_folder.write_log(self.out / "losses.csv", self.history)
                for key, value in row.items():
                    if key != "iteration":
                        writer.add_scalar(key, value, self.iteration)
            if self.iteration % self.config.sample_every == 0 or \
                    self.iteration == self.config.iterations:
                self.sample_grid()
            if self.iteration % self.config.checkpoint_every == 0 or \
                    self.iteration == self.config.iterations:
                if self.probe is not None:
                    self.judge_checkpoint(writer)
                self.save()
            last = self.history[-1] if self.history else {}
            report(progress, "refiner", self.iteration, self.config.iterations,
                   **{k: v for k, v in last.items() if k != "iteration"})
        writer.flush()
        return {"iterations": self.iteration, "seconds": time.perf_counter() - started}

    def save(self) -> None:
        state = {name: part.state_dict() for name, part in self._checkpointed().items()}
        state.update(iteration=self.iteration, history=self.history,
                     checkpoint_rows=self.checkpoint_rows,
                     pool_A=self.pools["A"].state(), pool_B=self.pools["B"].state(),
                     config=self.config.model_dump(mode="json"))
        save_checkpoint(state, self.out / "last.pt")

    def checkpoint_to_use(self) -> Path:
        """`chosen.pt` (see `judge_checkpoint`), or `last.pt` when identity is not checked."""
        if not self.config.identity_check:
            return self.out / "last.pt"
        chosen = self.out / "chosen.pt"
        if not chosen.exists():
            rows = self.checkpoint_rows
            best = max((r["identity_refined"] for r in rows), default=float("nan"))
            baseline = self.probe.baseline.identity_refined if self.probe else float("nan")
            raise RefineError(
                f"{self.out}: no checkpoint kept identity (best identity_refined {best:.1f} "
                f"against {baseline:.1f} unrefined, margin {self.config.identity_margin}); "
                f"see checkpoints.csv; refine with last.pt on purpose or train again "
                f"(a lower lr, another method)")
        return chosen

    def _identity_probe(self) -> IdentityProbe:
        config = self.config
        rng = np.random.default_rng([config.seed, RunStream.IDENTITY_CHECK])
        count = min(REALISM_IMAGES, len(self.b.records))
        chosen = sorted(rng.choice(len(self.b.records), count, replace=False).tolist())
        target = [self.b.load_one(index)[0] for index in chosen]
        validation = open_dataset(config.source, check_images=False).validation
        return IdentityProbe(self.a.records, validation, config.height, config.width,
                             config.identity_ids,
                             config.seed, self.device, self.out / "identity-judge.pt",
                             RealismMeter(target), keep_aspect=self.a.keep_aspect)

    @torch.no_grad()
    def judge_checkpoint(self, writer=None) -> dict:
        """Identity and realism of G now; `chosen.pt` is rewritten when G now is the choice."""
        assert self.probe is not None

        def refine(images: torch.Tensor) -> torch.Tensor:
            with self.arithmetic.autocast():
                return self.G(self.arithmetic.images(images)).float()
        scores = self.probe.score(refine).as_dict()
        baseline = self.probe.baseline.as_dict()
        row = {"iteration": self.iteration, **scores,
               "kept_identity": keeps_identity(scores["identity_refined"],
                                               baseline["identity_refined"],
                                               self.config.identity_margin)}
        self.checkpoint_rows = [r for r in self.checkpoint_rows
                                if r["iteration"] != self.iteration] + [row]
        run_folder.write_log(self.out / "checkpoints.csv",
                             [{"iteration": 0, **baseline, "kept_identity": True,
                               "unrefined": True}] +
                             [{**r, "unrefined": False} for r in self.checkpoint_rows])
        if writer is not None:
            for key, value in scores.items():
                writer.add_scalar(f"checkpoint/{key}", value, self.iteration)
        chosen = choose_checkpoint(self.checkpoint_rows, baseline["identity_refined"],
                                   self.config.identity_margin)
        if chosen is not None and chosen["iteration"] == self.iteration:
            save_checkpoint({"G": self.G.state_dict(), "config": self.config.model_dump(
                mode="json"), "iteration": self.iteration, "scores": scores}, self.out /
                "chosen.pt")
        atomic.write_text(self.out / "choice.json", json.dumps({
            "criterion": f"the lowest realism (1: the unrefined images) among checkpoints "
                         f"whose identity_refined is within {self.config.identity_margin} "
                         f"rank-1 points of the unrefined set's",
            "unrefined": baseline, "chosen": chosen,
            # A choice no closer to the target than the unrefined images retouches, not refines.
            "closer_than_unrefined": chosen is not None and
            chosen["realism"] < baseline["realism"],
            "probe_ids": self.probe.ids, "probe_images": len(self.probe.images)},
            indent=2) + "\n")
        return row

    @torch.no_grad()
    def sample_grid(self) -> Path:
        """The method's sample rows for the first images of each domain (CycleGAN: a, G(a),
        F(G(a)), b, F(b), G(F(b)); CUT: a, G(a), b, G(b); PTGAN tints M(a) on the first)."""
        columns = min(SAMPLES, len(self.a.records), len(self.b.records))
        cells = []  # per column, its images top to bottom (one a and one b: widths may differ)
        for c in range(columns):
            a, mask_a = self.a.load([c])
            b, _ = self.b.load([c])
            with self.arithmetic.autocast():
                rows = self.method.sample_rows(self.arithmetic.images(a), mask_a,
                                               self.arithmetic.images(b))
            cells.append([to_image(row[0]) for row in rows])
        h = self.config.height
        w = max(self.config.width, *(image.width for column in cells for image in column))
        grid = Image.new("RGB", (w * SAMPLES, h * len(cells[0])), (255, 255, 255))
        for c, column in enumerate(cells):
            for r, image in enumerate(column):
                grid.paste(image, (c * w, r * h))
        path = self.out / "samples" / f"iteration-{self.iteration:07d}.png"
        with atomic.atomic_path(path) as tmp:
            grid.save(tmp)
        return path
