"""Features of any image set from a trained embedding network f, batch-wise."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from synthreid.datasets.records import ImageRecord
from synthreid.device import Compute, compute
from synthreid.evaluate.features import FeatureSet, dataset_feature_set
from synthreid.reid.data import EvalImages


@torch.no_grad()
def extract_features(model, records: list[ImageRecord], height: int, width: int,
                     arithmetic: Compute, batch_size: int = 128,
                     workers: int = 0) -> np.ndarray:
    """Features computed in fp32 whatever precision trained the model: `arithmetic` gives the
    device and memory layout only. Scores must not depend on the machine that computed them,
    and bf16 autocast moved an Inception's features by 2% of their scale, enough to reorder
    near neighbours (the Market protocol's values are tested equal to 1e-4)."""
    was_training = model.training
    model.eval()
    loader = DataLoader(EvalImages(records, height, width), batch_size=batch_size,
                        num_workers=workers)
    chunks = []
    for images in loader:
        chunks.append(model.embed(arithmetic.images(images)).float().cpu())
    model.train(was_training)
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0), np.float32)


def dataset_features(checkpoint: str, dataset, device: torch.device | None = None,
                     workers: int = 0) -> FeatureSet:
    """Query and gallery features of a dataset, with ids and cameras, from a checkpoint; the
    input size is the one the model was trained at."""
    from synthreid.reid.checkpoint import load_checkpoint, model_from_checkpoint

    arithmetic = compute(device)
    state = load_checkpoint(checkpoint)
    augment = state.get("train_config", {}).get("augment", {})
    height, width = augment.get("height", 256), augment.get("width", 128)
    model = arithmetic.module(model_from_checkpoint(checkpoint, arithmetic.device))
    query, gallery = (extract_features(model, getattr(dataset, split), height, width,
                                       arithmetic, workers=workers)
                      for split in ("query", "gallery"))
    return dataset_feature_set(dataset, query, gallery)
