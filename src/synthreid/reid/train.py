"""Training, validation, finetuning and mixed training of re-id models (thesis 2.3).

After each epoch the validation score (the area under the thesis-protocol CMC on the validation
ids) is logged and the best epoch kept as `best.pt`; every epoch is checkpointed as `last.pt`
with optimizer, schedule and RNG state, so `resume` continues a killed run where it stopped.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from synthreid.datasets import ReidDataset, relabel
from synthreid.datasets.records import ImageRecord
from synthreid.errors import ReidError
from synthreid.evaluate import protocols
from synthreid.reid.checkpoint import load_checkpoint, save_checkpoint
from synthreid.reid.data import Augment, IdentitySampler, ShuffleSampler, TrainImages
from synthreid.reid.features import extract_features
from synthreid.reid.losses import LossConfig
from synthreid.reid.model import ModelArgs, ReidModel


@dataclass
class TrainConfig:
    out: str
    model: ModelArgs = field(default_factory=ModelArgs)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: Augment = field(default_factory=Augment)
    epochs: int = 60
    optimizer: str = "sgd"  # or "adam"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 2
    schedule: str = "step"  # or "cosine"
    milestones: tuple[int, ...] = (40,)
    gamma: float = 0.1
    batch_size: int = 64  # softmax only: random batches of this size
    p: int = 16  # P x K batches whenever the triplet loss is on
    k: int = 4
    workers: int = 2
    seed: int = 0
    validation_ids: int = 100
    validation_repeats: int = 10
    early_stop: int = 0  # epochs without a better validation score; 0: never stop early
    init: str | None = None  # finetuning: load f from this checkpoint, fresh classifiers
    finetune_lr_factor: float = 0.1  # f's learning rate is this times the base rate
    mix_ratio: int = 1  # with two datasets: batches of the first per batch of the second
    joint_head: bool = False  # with two datasets: one classifier over both id sets


def _validate(config: TrainConfig) -> None:
    if config.optimizer not in ("sgd", "adam"):
        raise ReidError(f"optimizer must be 'sgd' or 'adam', got {config.optimizer!r}")
    if config.schedule not in ("step", "cosine"):
        raise ReidError(f"schedule must be 'step' or 'cosine', got {config.schedule!r}")
    if config.epochs < 1 or config.lr <= 0 or config.mix_ratio < 1:
        raise ReidError("epochs and mix ratio must be >= 1 and the learning rate > 0")


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
    held = set(np.random.default_rng([seed, 7]).choice(ids, count, replace=False).tolist())
    return ([r for r in dataset.train if r.pid not in held],
            [r for r in dataset.train if r.pid in held])


@dataclass
class Source:
    """One training dataset, relabelled, with its loader and classifier head."""

    name: str
    records: list[ImageRecord]
    loader: DataLoader
    head: str


def _loader(records: list[ImageRecord], config: TrainConfig, seed: int) -> DataLoader:
    if config.loss.triplet_weight > 0:
        sampler = IdentitySampler([r.pid for r in records], config.p, config.k, seed)
        batch = config.p * config.k
    else:
        batch = min(config.batch_size, len(records))
        sampler = ShuffleSampler(len(records), batch, seed)
    return DataLoader(TrainImages(records, config.augment), batch_size=batch, sampler=sampler,
                      num_workers=config.workers, drop_last=True,
                      persistent_workers=config.workers > 0, pin_memory=torch.cuda.is_available())


def _lr_factor(config: TrainConfig, epoch: int) -> float:
    if epoch < config.warmup_epochs:
        return (epoch + 1) / (config.warmup_epochs + 1)
    if config.schedule == "cosine":
        span = max(config.epochs - config.warmup_epochs, 1)
        return 0.5 * (1 + math.cos(math.pi * (epoch - config.warmup_epochs) / span))
    return config.gamma ** sum(epoch >= m for m in config.milestones)


class Trainer:
    def __init__(self, config: TrainConfig, datasets: list[ReidDataset]) -> None:
        _validate(config)
        if not 1 <= len(datasets) <= 2:
            raise ReidError("train on one dataset, or mix exactly two")
        self.config = config
        self.out = Path(config.out)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.rank = int(os.environ.get("RANK", "0"))
        if self.distributed and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        torch.manual_seed(config.seed)
        self.sources: list[Source] = []
        validation: list[ImageRecord] = []
        offset = 0
        for i, dataset in enumerate(datasets):
            train, held = split_validation(dataset, config.validation_ids, config.seed)
            train, _ = relabel(train)
            if config.joint_head:  # one id space: the second dataset's labels follow the first's
                train = [ImageRecord(r.path, r.pid + offset, r.camid, r.split) for r in train]
                offset += len({r.pid for r in train})
            if i == 0:
                validation = held
            head = "joint" if config.joint_head else f"d{i}"
            self.sources.append(Source(dataset.name, train, _loader(train, config, config.seed + i),
                                       head))
        self.validation = validation
        classes: dict[str, int] = {}
        for source in self.sources:
            classes[source.head] = max(classes.get(source.head, 0),
                                       max(r.pid for r in source.records) + 1)
        self.model = ReidModel(config.model, classes).to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.start_epoch, self.best, self.history = 0, -1.0, []
        if config.init:
            loaded = load_checkpoint(config.init, expect_backbone=config.model.backbone)
            self.model.f.load_state_dict({k.removeprefix("f."): v for k, v in
                                          loaded["model"].items() if k.startswith("f.")})
        self.optimizer = self._optimizer()
        self.net = self.model
        if self.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)

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
                               weight_decay=config.weight_decay, nesterov=True)

    def resume(self) -> bool:
        path = self.out / "last.pt"
        if not path.exists():
            return False
        state = load_checkpoint(path, expect_backbone=self.config.model.backbone)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.start_epoch, self.best = state["epoch"] + 1, state["best_score"]
        self.history = state["history"]
        return True

    def _batches(self, epoch: int):
        """Batches of all sources: `mix_ratio` of the first per one of the second. Under
        DistributedDataParallel, rank r takes batch r of every complete group of world-size
        batches, so every rank steps the same number of times."""
        iterators = []
        for source in self.sources:
            source.loader.sampler.set_epoch(epoch)
            iterators.append(iter(source.loader))
        pattern = [0] * self.config.mix_ratio + [1] if len(iterators) == 2 else [0]
        world = int(os.environ.get("WORLD_SIZE", "1")) if self.distributed else 1
        group = []
        for step in itertools.count():
            index = pattern[step % len(pattern)]
            try:
                images, labels = next(iterators[index])
            except StopIteration:
                return
            group.append((self.sources[index].head, images, labels))
            if len(group) == world:
                yield group[self.rank]
                group = []

    def train_epoch(self, epoch: int, progress=None) -> dict:
        self.model.train()
        factor = _lr_factor(self.config, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        total, correct, seen, started = 0.0, 0, 0, time.perf_counter()
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        for head, images, labels in self._batches(epoch):
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            if self.device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast:
                features, logits = self.net(images, head)
                loss = self.config.loss(features, logits, labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            if progress is not None:
                progress(len(labels), total / seen, correct / seen)
        if seen == 0:
            raise ReidError("an epoch produced no batch: the training set is smaller than a batch")
        return {"loss": total / seen, "accuracy": correct / seen,
                "images_per_s": seen / (time.perf_counter() - started)}

    def validate(self) -> protocols.CMCResult:
        features = extract_features(self.model, self.validation, self.config.augment.height,
                                    self.config.augment.width, self.device)
        ids = np.array([r.pid for r in self.validation])
        cams = np.array([r.camid for r in self.validation])
        identities = min(self.config.validation_ids, len(set(ids.tolist())))
        return protocols.thesis(features, ids, cams, identities=identities,
                                repeats=self.config.validation_repeats, seed=self.config.seed,
                                device=self.device)

    def fit(self, progress=None, log=None) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        stale = 0
        writer = _tensorboard(self.out) if self.rank == 0 else None
        for epoch in range(self.start_epoch, self.config.epochs):
            stats = self.train_epoch(epoch, progress)
            if self.rank != 0:
                continue
            score = self.validate()
            stats.update(epoch=epoch, validation_area=score.area, validation_rank1=score.rank(1))
            self.history.append(stats)
            improved = score.area > self.best
            if improved:
                self.best, stale = score.area, 0
            else:
                stale += 1
            self._save(epoch, improved)
            _write_csv(self.out / "log.csv", self.history)
            if writer is not None:
                for key, value in stats.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, epoch)
                writer.flush()
            if log is not None:
                log(stats)
            if self.config.early_stop and stale >= self.config.early_stop:
                break
        return {"best_validation_area": self.best, "epochs": len(self.history)}

    def _save(self, epoch: int, best: bool) -> None:
        state = {"model": self.model.state_dict(), **self.model.describe(),
                 "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                 "epoch": epoch, "best_score": self.best, "history": self.history,
                 "train_config": _plain(asdict(self.config))}
        save_checkpoint(state, self.out / "last.pt")
        if best:
            save_checkpoint(state, self.out / "best.pt")


def _plain(value):
    """Config values as the plain types `weights_only` loading accepts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _write_csv(path: Path, history: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    tmp.replace(path)


def _tensorboard(out: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard"))
