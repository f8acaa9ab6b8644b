"""Does a refiner keep the person? A fixed judge, a small re-id network trained once on the
unrefined generated training ids (never on the probe ids), ranks the probe ids' refined images:

- `identity_refined`: each refined probe image against the other refined probe images (can
  people still be told apart?);
- `identity_cross`: each refined probe image against the unrefined probe images, its own source
  left out (is G(a) still a's person?);

both as rank-1 in percent over every probe image (up to `IMAGES_PER_ID` of each of up to
`identity_ids` ids): a hit when the nearest image of the query's own id is strictly nearer
than every other id's, so ties count against the match. Chance is about (k - 1) / (n - 1) for
k images an id among n; a refiner that turns every image into the same picture scores 0. The
unrefined set scores `baseline`. With `realism` (realism.py) at every checkpoint, the trainer
chooses the checkpoint to use (`choose_checkpoint`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from synthreid.conv import Conv2d
from synthreid.datasets.records import ImageRecord
from synthreid.errors import RefineError
from synthreid.refine.data import load_image, load_kept, translate_padded
from synthreid.seeds import RunStream
from synthreid.torch_files import read_torch_file, save_checkpoint

JUDGE_SIZE = (64, 32)  # the judge looks at people at this size: fast, and enough for clothes
JUDGE_VERSION = 1  # a judge file made by another version is retrained, not trusted
MIN_PROBE_IDS = 5
IMAGES_PER_ID = 4  # probe images of an id: queries enough for 1-point steps, cheap to refine


class IdentityJudge(nn.Module):
    """Four strided convolutions, pooled into a 128-d feature; a linear classifier on top."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out, stride in ((3, 32, 2), (32, 64, 2), (64, 128, 2), (128, 128, 1)):
            layers += [Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(True)]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(128, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))

    @torch.no_grad()
    def embed(self, images: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """Unit features of a batch, or of a list of (3, H, W) images of any widths."""
        if isinstance(images, list):
            images = torch.cat([self._resized(image[None]) for image in images])
        else:
            images = self._resized(images)
        device = next(self.parameters()).device
        return nn.functional.normalize(self.features(images.to(device)), dim=1)

    @staticmethod
    def _resized(images: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(images.float(), size=JUDGE_SIZE, mode="bilinear",
                                         align_corners=False, antialias=True)


def _groups(records: list[ImageRecord]) -> dict[int, list[ImageRecord]]:
    """Up to IMAGES_PER_ID images of each id with two images or more, spread over its images."""
    by_id: dict[int, list[ImageRecord]] = defaultdict(list)
    for record in records:
        by_id[record.pid].append(record)
    groups = {}
    for pid, group in sorted(by_id.items()):
        if len(group) >= 2:
            picks = np.linspace(0, len(group) - 1, min(IMAGES_PER_ID, len(group)))
            groups[pid] = [group[int(round(i))] for i in picks]
    return groups


def split_probe(train: list[ImageRecord], validation: list[ImageRecord], ids: int,
                seed: int) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """(the judge's training records, the probe records of up to `ids` ids): the generated
    set's validation ids when it has enough, else half of its training ids at most, held out
    from the judge; drawn by seed."""
    rng = np.random.default_rng([seed, RunStream.IDENTITY_CHECK])
    groups = _groups(validation)
    if len(groups) >= MIN_PROBE_IDS:
        chosen = sorted(rng.choice(sorted(groups), min(ids, len(groups)), replace=False).tolist())
        return train, [r for pid in chosen for r in groups[pid]]
    groups = _groups(train)
    count = min(ids, len(groups) // 2)
    if count < MIN_PROBE_IDS:
        raise RefineError(f"identity check: the generated set has {len(groups)} training ids "
                          f"with two images or more and no validation ids; "
                          f"{2 * MIN_PROBE_IDS} are needed (or set identity_check: false)")
    probe = sorted(rng.choice(sorted(groups), count, replace=False).tolist())
    held_out = set(probe)
    return [r for r in train if r.pid not in held_out], [r for pid in probe for r in groups[pid]]


def train_judge(records: list[ImageRecord], seed: int, device: torch.device,
                epochs: int = 12) -> IdentityJudge:
    """Softmax training on the judge's ids, all images held in memory (a few thousand at
    64x32), Adam with flips; deterministic for a seed on one machine."""
    torch.manual_seed(seed)
    labels = {pid: n for n, pid in enumerate(sorted({r.pid for r in records}))}
    images = torch.stack([load_image(r.path, *JUDGE_SIZE) for r in records])
    targets = torch.tensor([labels[r.pid] for r in records])
    judge = IdentityJudge(len(labels)).to(device).train()
    optimizer = torch.optim.Adam(judge.parameters(), lr=3e-3, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order) - 1, 64):
            batch = order[start:start + 64]
            x = images[batch]
            flip = torch.rand(len(batch), generator=generator) < 0.5
            x[flip] = x[flip].flip(-1)
            loss = nn.functional.cross_entropy(judge(x.to(device)), targets[batch].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return judge.eval()


def rank1(query: torch.Tensor, gallery: torch.Tensor, query_ids: torch.Tensor,
          gallery_ids: torch.Tensor, exclude_same_index: bool) -> float:
    """Percent of queries whose nearest gallery image of their own id is strictly nearer than
    every other id's (ties against the match); with `exclude_same_index`, gallery row i is left
    out for query row i (the query itself, or its own source image)."""
    distances = torch.cdist(query.float(), gallery.float())
    if exclude_same_index:
        distances.fill_diagonal_(float("inf"))
    same = query_ids[:, None] == gallery_ids[None, :]
    inf = torch.tensor(float("inf"), device=distances.device)
    nearest_own = torch.where(same, distances, inf).min(dim=1).values
    nearest_other = torch.where(same, inf, distances).min(dim=1).values
    return float((nearest_own < nearest_other).float().mean() * 100)


@dataclass
class IdentityScores:
    identity_refined: float
    identity_cross: float
    realism: float

    def as_dict(self) -> dict[str, float]:
        return {"identity_refined": self.identity_refined,
                "identity_cross": self.identity_cross, "realism": self.realism}


class IdentityProbe:
    """The judge, the probe images and the realism meter of one refiner run."""

    def __init__(self, train: list[ImageRecord], validation: list[ImageRecord], height: int,
                 width: int, ids: int, seed: int, device: torch.device, judge_file: Path,
                 realism, keep_aspect: bool = False) -> None:
        """The probe images are squeezed to height x width, or with `keep_aspect` kept at their
        own aspect (as `refine` applies G) and translated a width at a time."""
        self.device, self.realism = device, realism
        judge_records, probe = split_probe(train, validation, ids, seed)
        self.judge = self._judge(judge_records, seed, judge_file)
        self.images: torch.Tensor | list[torch.Tensor] = (
            [load_kept(r.path, height) for r in probe] if keep_aspect else
            torch.stack([load_image(r.path, height, width) for r in probe]))
        self.pids = torch.tensor([r.pid for r in probe], device=device)
        self.ids = len({r.pid for r in probe})
        self.unrefined = self.judge.embed(self.images)
        if realism is not None:
            realism.calibrate(self.images)  # the unrefined probe images are realism 1
        self.baseline = self.score(lambda images: images)

    def _judge(self, records: list[ImageRecord], seed: int, path: Path) -> IdentityJudge:
        classes = len({r.pid for r in records})
        if path.exists():
            state = read_torch_file(path, "identity judge", RefineError)
            if state.get("version") == JUDGE_VERSION and state.get("classes") == classes:
                judge = IdentityJudge(classes)
                judge.load_state_dict(state["judge"])
                return judge.to(self.device).eval()
        judge = train_judge(records, seed, self.device)
        save_checkpoint({"judge": judge.state_dict(), "classes": classes,
                         "version": JUDGE_VERSION}, path)
        return judge

    @torch.no_grad()
    def score(self, refine) -> IdentityScores:
        """Scores of `refine` (images in [-1, 1] to refined images in [-1, 1])."""
        refined = self._refine(refine, self.images)
        features = self.judge.embed(refined)
        realism = self.realism.distance(refined) if self.realism is not None else float("nan")
        return IdentityScores(
            rank1(features, features, self.pids, self.pids, exclude_same_index=True),
            rank1(features, self.unrefined, self.pids, self.pids, exclude_same_index=True),
            realism)

    @staticmethod
    def _refine(refine, images: torch.Tensor | list[torch.Tensor]):
        if isinstance(images, torch.Tensor):
            return torch.cat([refine(images[i:i + 16]).float().cpu()
                              for i in range(0, len(images), 16)])
        by_width: dict[int, list[int]] = defaultdict(list)
        for n, image in enumerate(images):
            by_width[image.shape[-1]].append(n)
        refined: list[torch.Tensor] = [images[0]] * len(images)
        for group in by_width.values():
            for start in range(0, len(group), 16):
                chunk = group[start:start + 16]
                out = translate_padded(refine, torch.stack([images[n] for n in chunk]))
                for n, image in zip(chunk, out.float().cpu()):
                    refined[n] = image
        return refined


def keeps_identity(identity_refined: float, baseline: float, margin: float) -> bool:
    """Whether a checkpoint's `identity_refined` is within `margin` points of the unrefined
    set's."""
    return identity_refined >= baseline - margin


def choose_checkpoint(rows: list[dict], baseline: float, margin: float) -> dict | None:
    """Among checkpoint rows (iteration, identity_refined, identity_cross, realism), the most
    realistic that keeps identity (`keeps_identity`); None when none does (the caller says so;
    it never picks one that did not)."""
    kept = [row for row in rows if keeps_identity(row["identity_refined"], baseline, margin)]
    if not kept:
        return None
    return min(kept, key=lambda row: (row["realism"], -row["iteration"]))
