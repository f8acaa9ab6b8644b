"""Training, validation, finetuning and mixed training of re-id models (thesis 2.3).

After each epoch the validation score (the area under the thesis-protocol CMC on held-out ids)
is logged and the best epoch kept as `best.pt`; every epoch is checkpointed as `last.pt` with
optimizer and RNG state, so a resume continues a killed run where it stopped. The run folder
holds the resolved `config.yaml`; it is never overwritten silently, and a resume must match it.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from synthreid import atomic, run_folder
from synthreid.datasets import ReidDataset, relabel
from synthreid.datasets.records import ImageRecord
from synthreid.datasets.splits import draw_ids
from synthreid.device import Compute, compute, torch_device
from synthreid.errors import EvaluationError, ReidError
from synthreid.evaluate import protocols
from synthreid.progress import Reporter, report
from synthreid.reid.checkpoint import load_checkpoint
from synthreid.reid.config import RUNTIME_ONLY, TrainConfig
from synthreid.reid.data import IdentitySampler, ShuffleSampler, TrainImages
from synthreid.reid.features import extract_features
from synthreid.reid.model import ReidModel
from synthreid.seeds import RunStream
from synthreid.torch_files import save_checkpoint
from synthreid.typed import dump_config

RUN_FILES = ("config.yaml", "last.pt", "best.pt", "log.csv", "tensorboard")


def split_validation(dataset: ReidDataset, count: int,
                     seed: int) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """(train, validation): the dataset's own validation ids, else `count` ids held out of
    the training set (the thesis holds out 100)."""
    if dataset.validation:
        return dataset.train, dataset.validation
    ids = sorted({r.pid for r in dataset.train})
    count = min(count, len(ids) // 5)
    if count < 2:
        raise ReidError(f"{dataset.name}: too few training ids ({len(ids)}) to hold out a "
                        f"validation set")
    held = draw_ids(ids, count, np.random.default_rng([seed, RunStream.VALIDATION_IDS]))
    return ([r for r in dataset.train if r.pid not in held],
            [r for r in dataset.train if r.pid in held])


@dataclass
class Source:
    """One training dataset: relabelled training images, held-out validation images, the
    loader of this rank's share and its classifier head."""

    name: str
    records: list[ImageRecord]
    validation: list[ImageRecord]
    distractor_ids: tuple[int, ...]
    loader: DataLoader
    head: str
    pseudo_cameras: bool = False  # the thesis protocol keeps real cameras apart, not these


def _loader(records: list[ImageRecord], config: TrainConfig, seed: int, rank: int,
            world: int) -> DataLoader:
    if config.loss.triplet_weight > 0:
        sampler = IdentitySampler([r.pid for r in records], config.p, config.k, seed)
    else:
        sampler = ShuffleSampler(len(records), min(config.batch_size, len(records)), seed)
    sampler.shard(rank, world)
    return DataLoader(TrainImages(records, config.augment), batch_size=sampler.batch,
                      sampler=sampler, num_workers=config.workers, drop_last=True,
                      persistent_workers=config.workers > 0,
                      pin_memory=torch_device().type == "cuda")


def _lr_factor(config: TrainConfig, epoch: int) -> float:
    if epoch < config.warmup_epochs:
        return (epoch + 1) / (config.warmup_epochs + 1)
    if config.schedule == "cosine":
        span = max(config.epochs - config.warmup_epochs, 1)
        return 0.5 * (1 + math.cos(math.pi * (epoch - config.warmup_epochs) / span))
    return config.gamma ** sum(epoch >= m for m in config.milestones)


class Trainer:
    def __init__(self, config: TrainConfig, datasets: list[ReidDataset],
                 arithmetic: Compute | None = None) -> None:
        if not 1 <= len(datasets) <= 2:
            raise ReidError("train on one dataset, or mix exactly two")
        if config.out is None:
            raise ReidError("out: a run folder is needed")
        if config.select_on >= len(datasets):
            raise ReidError(f"select_on: {config.select_on} names no dataset of {len(datasets)}")
        self.config = config
        self.out = Path(config.out)
        self.arithmetic = arithmetic or compute()
        self.device = self.arithmetic.device
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.distributed = self.world > 1
        self.rank = int(os.environ.get("RANK", "0"))
        if self.distributed and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        torch.manual_seed(config.seed)
        self.sources: list[Source] = []
        offset = 0
        for i, dataset in enumerate(datasets):
            train, held = split_validation(dataset, config.validation_ids, config.seed)
            train, _ = relabel(train)
            if config.joint_head:  # one id space: the second dataset's labels follow the first's
                train = [ImageRecord(r.path, r.pid + offset, r.camid, r.split) for r in train]
                offset += len({r.pid for r in train})
            head = "joint" if config.joint_head else f"d{i}"
            loader = _loader(train, config, config.seed + i, self.rank, self.world)
            self.sources.append(Source(dataset.name, train, held, dataset.distractor_ids,
                                       loader, head, dataset.pseudo_cameras))
        classes: dict[str, int] = {}
        for source in self.sources:
            classes[source.head] = max(classes.get(source.head, 0),
                                       max(r.pid for r in source.records) + 1)
        self.model = ReidModel(config.model, classes).to(self.device)
        if config.pretrained:
            self.model.f.backbone.load_imagenet(config.pretrained)
        self.model = self.arithmetic.module(self.model)
        self.start_epoch, self.best, self.history = 0, -1.0, []
        if config.init:
            loaded = load_checkpoint(config.init, expect_backbone=config.model.backbone)
            self.model.f.load_state_dict({k.removeprefix("f."): v for k, v in
                                          loaded["model"].items() if k.startswith("f.")})
        self.optimizer = self._optimizer()
        self.net = self.model
        if self.distributed:  # separate heads: each step leaves the other head unused
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, find_unused_parameters=len(classes) > 1)
        self.opened = False

    def _optimizer(self) -> torch.optim.Optimizer:
        config = self.config
        f_rate = config.lr * (config.finetune_lr_factor if config.init else 1.0)
        groups = [{"params": [p for p in self.model.f.parameters() if p.requires_grad],
                   "lr": f_rate, "base_lr": f_rate},
                  {"params": list(self.model.g.parameters()), "lr": config.lr,
                   "base_lr": config.lr}]
        if config.optimizer == "adam":
            return torch.optim.Adam(groups, weight_decay=config.weight_decay)
        return torch.optim.SGD(groups, momentum=config.momentum,
                               weight_decay=config.weight_decay,
                               nesterov=config.nesterov and config.momentum > 0)

    def open(self, resume: bool = False, overwrite: bool = False) -> bool:
        """Claim the run folder: refuse one that holds a run unless resuming (with the same
        settings) or overwriting. Returns True when a checkpoint was resumed."""
        # Every rank judges the folder as it was before anyone wrote to it: a rank that looked
        # after rank 0 had written config.yaml would see files that are not a run and refuse.
        existing = run_folder.existing_run(self.out, RUN_FILES)
        resuming = run_folder.settle(self.out, existing, self.config.model_dump(mode="json"),
                                     resume, overwrite, ReidError, RUNTIME_ONLY, remove=False)
        self._barrier()
        if self.rank == 0:
            if existing and not resuming:
                run_folder.clear(self.out, existing)
            atomic.write_text(self.out / "config.yaml", dump_config(self.config))
        self._barrier()
        resumed = resuming and self._load_last()
        self.opened = True
        return resumed

    def _load_last(self) -> bool:
        path = self.out / "last.pt"
        if not path.exists():
            return False  # killed before its first epoch ended: nothing to resume
        state = load_checkpoint(path, expect_backbone=self.config.model.backbone)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.start_epoch, self.best = state["epoch"] + 1, state["best_score"]
        self.history = state["history"]
        return True

    def _barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def _batches(self, epoch: int):
        """This rank's batches of all sources: `mix_ratio` of the first per one of the second.
        An epoch is one pass over the first source (the real set, in a mixed experiment); the
        second cycles, reshuffled at each pass, so a small synthetic set never cuts the real
        epoch short. Every rank holds the same number of batches of each source (the samplers
        shard whole batches), so all ranks step together, through the same heads."""
        passes = [0] * len(self.sources)

        def start(index: int):
            # A distinct shuffle for every (epoch, pass), the same after a resume.
            self.sources[index].loader.sampler.set_epoch(epoch + passes[index] *
                                                         self.config.epochs)
            return iter(self.sources[index].loader)

        iterators = [start(i) for i in range(len(self.sources))]
        pattern = [0] * self.config.mix_ratio + [1] if len(iterators) == 2 else [0]
        for step in itertools.count():
            index = pattern[step % len(pattern)]
            try:
                images, labels = next(iterators[index])
            except StopIteration:
                if index == 0:
                    return
                passes[index] += 1
                iterators[index] = start(index)
                images, labels = next(iterators[index])
            yield self.sources[index].head, images, labels

    def _epoch_images(self) -> int:
        """Images this rank trains on in one epoch: a pass over the first source, and the
        second's batches between (see `_batches`)."""
        first = self.sources[0].loader
        images = len(first) * first.batch_size
        if len(self.sources) == 2:
            second = self.sources[1].loader
            images += len(first) // self.config.mix_ratio * second.batch_size
        return images

    def train_epoch(self, epoch: int, progress: Reporter | None = None) -> dict:
        """One epoch; `progress` hears of every step (images so far, mean loss, accuracy)."""
        self.model.train()
        factor = _lr_factor(self.config, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        total, correct, seen, started = 0.0, 0, 0, time.perf_counter()
        for step, (head, images, labels) in enumerate(self._batches(epoch)):
            images = self.arithmetic.images(images)
            labels = labels.to(self.device, non_blocking=True)
            with self.arithmetic.autocast():
                features, logits = self.net(images, head)
                loss = self.config.loss(features, logits, labels)
            value = loss.item()
            if not math.isfinite(value):
                raise ReidError(f"epoch {epoch}, step {step}: the loss is {value}; training "
                                f"diverged (try a lower learning rate); {self.out / 'last.pt'} "
                                f"holds the last finished epoch")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += value * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            report(progress, f"epoch {epoch}", seen, self._epoch_images(), loss=total / seen,
                   accuracy=correct / seen)
        if seen == 0:
            raise ReidError("an epoch produced no batch: the training set is smaller than a batch")
        return {"loss": total / seen, "accuracy": correct / seen,
                "images_per_s": seen / (time.perf_counter() - started)}

    def validate(self) -> list[protocols.CMCResult]:
        """The thesis-protocol CMC on each training set's held-out ids."""
        results = []
        for source in self.sources:
            features = extract_features(self.model, source.validation, self.config.augment.height,
                                        self.config.augment.width, self.arithmetic)
            ids = np.array([r.pid for r in source.validation])
            cams = np.array([r.camid for r in source.validation])
            try:
                results.append(protocols.thesis(
                    features, ids, cams, identities=self.config.validation_ids,
                    repeats=self.config.validation_repeats, seed=self.config.seed,
                    ignore_ids=source.distractor_ids, device=self.device,
                    cameras="mixed" if source.pseudo_cameras else "apart"))
            except EvaluationError as error:
                raise ReidError(f"validation on {source.name}: {error}") from None
        return results

    def fit(self, progress: Reporter | None = None, log=None) -> dict:
        """Train to the last epoch (or an early stop). Claims the run folder first unless
        `open()` was called. `progress` hears of every step; `log(stats)` gets each epoch's
        record (loss, accuracy, validation scores) as log.csv does."""
        if not self.opened:
            self.open()
        stale = 0
        writer = run_folder.tensorboard(self.out) if self.rank == 0 else None
        epoch = self.start_epoch - 1
        for epoch in range(self.start_epoch, self.config.epochs):
            stats = self.train_epoch(epoch, progress)
            stop = False
            if self.rank == 0:
                stale = 0 if self._end_epoch(epoch, stats, writer, log) else stale + 1
                stop = bool(self.config.early_stop) and stale >= self.config.early_stop
            if self._broadcast_stop(stop):
                break
        return {"best_validation_area": self.best, "epochs": epoch + 1}

    def _end_epoch(self, epoch: int, stats: dict, writer, log) -> bool:
        scores = self.validate()
        chosen = scores[self.config.select_on]
        stats.update(epoch=epoch, validation_area=chosen.area, validation_rank1=chosen.rank(1))
        if len(scores) > 1:
            for source, score in zip(self.sources, scores):
                stats[f"validation_area_{source.head}"] = score.area
        improved = chosen.area > self.best
        stats["improved"] = improved
        self.history.append(stats)
        if improved:
            self.best = chosen.area
        self._save(epoch, improved)
        run_folder.write_log(self.out / "log.csv", self.history)
        if writer is not None:
            for key, value in stats.items():
                if key not in ("epoch", "improved"):
                    writer.add_scalar(key, value, epoch)
            writer.flush()
        if log is not None:
            log(stats)
        return improved

    def _broadcast_stop(self, stop: bool) -> bool:
        """Rank 0 decides an early stop; every rank learns it, so none waits for the others."""
        if not self.distributed:
            return stop
        flag = torch.tensor([int(stop)], device=self.device if self.device.type == "cuda"
                            else "cpu")
        torch.distributed.broadcast(flag, src=0)
        return bool(flag.item())

    def _save(self, epoch: int, best: bool) -> None:
        state = {"model": self.model.state_dict(), **self.model.describe(),
                 "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                 "epoch": epoch, "best_score": self.best, "history": self.history,
                 "train_config": self.config.model_dump(mode="json"),
                 "augmentations": self.config.augment.used()}
        # best.pt first: a kill between the two writes must not leave last.pt recording a best
        # score whose weights were never written.
        if best:
            save_checkpoint(state, self.out / "best.pt")
        save_checkpoint(state, self.out / "last.pt")
