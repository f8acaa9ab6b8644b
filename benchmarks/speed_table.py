"""Old path against new path, side by side, on this machine: re-id training, refiner training
and refinement, feature extraction, and Cycles rendering.

    python benchmarks/speed_table.py [--parts reid,refine,features,render] [--steps 4]
    python benchmarks/speed_table.py --profile   # where a training step's time goes

Old: fp32, NCHW (what every CPU run did before precision and layout were chosen per device).
New: what `synthreid.device.compute()` chooses here (bf16 autocast only where the hardware has
bf16; channels-last). Renders: the old default (16 samples, no denoiser) against the denoised
settings at fewer samples, with PSNR/SSIM of both to a 256-sample reference of the same frames.
Prints one table row per measurement: old, new, new/old.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# Run as `python benchmarks/speed_table.py`: its folder is on the path.
from refiner_speed import write_set

from synthreid.device import Compute, compute, torch_device


def rate(step, units: int, steps: int, warm: int = 1) -> float:
    """Units per second of `step()` over `steps` calls after `warm` uncounted ones."""
    for _ in range(warm):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return units * steps / (time.perf_counter() - start)


def row(name: str, unit: str, old: float, new: float) -> None:
    print(f"| {name:34} | {old:8.2f} | {new:8.2f} | {new / old:5.2f}x | {unit} |", flush=True)


def reid_step(backbone: str, height: int, width: int, arithmetic: Compute, batch: int):
    from synthreid.reid.losses import LossConfig
    from synthreid.reid.model import ModelArgs, ReidModel

    torch.manual_seed(0)
    model = arithmetic.module(ReidModel(ModelArgs(backbone=backbone), {"d0": 100}).train())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = arithmetic.images(torch.randn(batch, 3, height, width))
    labels = torch.randint(0, 100, (batch,), device=arithmetic.device)
    loss_fn = LossConfig()

    def step() -> None:
        with arithmetic.autocast():
            features, logits = model(images, "d0")
            loss = loss_fn(features, logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def profile(step, name: str, steps: int, top: int = 10) -> None:
    """The ops that take a step's time on the new path: each op's share of the self CPU time
    of `steps` steps after a warm-up, and the share of all convolutions (forward and backward),
    the arithmetic a faster number format or layout would have to speed up."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            step()
    ops = profiler.key_averages()
    total = sum(op.self_cpu_time_total for op in ops)
    convolution = sum(op.self_cpu_time_total for op in ops if "conv" in op.key)
    print(f"  profile, {name}: {total / steps / 1e6:.2f} s a step; convolutions "
          f"{100 * convolution / total:.0f}% of it; the largest ops:")
    for op in sorted(ops, key=lambda op: -op.self_cpu_time_total)[:top]:
        print(f"    {op.key:44} {100 * op.self_cpu_time_total / total:5.1f}%")


def profile_part(new: Compute, steps: int, tmp: Path) -> None:
    from synthreid.refine.config import RefinerConfig
    from synthreid.refine.train import RefinerTrainer

    profile(reid_step("inception", 128, 64, new, 64), "re-id step inception 128x64 b64", steps)
    source = write_set(tmp / "a", 128, 64, 64, 0)
    target = write_set(tmp / "b", 128, 64, 64, 1)
    refiner = RefinerTrainer(RefinerConfig(
        source=f"synthetic:{source}", target=f"synthetic:{target}", out=str(tmp / "profile"),
        height=128, width=64, blocks=6, batch_size=1, iterations=10**6), new)
    counter = iter(range(10**6))
    profile(lambda: refiner.step(next(counter)), "refiner cyclegan 128x64 b1", steps * 2)


def reid_part(old: Compute, new: Compute, steps: int) -> None:
    for backbone, height, width, batch in (("inception", 128, 64, 64), ("inception", 256, 128, 32),
                                           ("resnet50", 256, 128, 32)):
        rates = [rate(reid_step(backbone, height, width, arithmetic, batch), batch, steps)
                 for arithmetic in (old, new)]
        row(f"re-id step {backbone} {height}x{width} b{batch}", "images/s", *rates)


def refine_part(old: Compute, new: Compute, steps: int, tmp: Path) -> None:
    """Old against the new path's precision in both layouts (refiners use
    `networks.CHANNELS_LAST`, chosen by these rows)."""
    from dataclasses import replace

    from synthreid.refine.config import METHODS, RefinerConfig
    from synthreid.refine.networks import CHANNELS_LAST
    from synthreid.refine.train import RefinerTrainer

    source = write_set(tmp / "a", 128, 64, 64, 0)
    target = write_set(tmp / "b", 128, 64, 64, 1)
    layouts = {"NCHW": replace(new, channels_last=False),
               "channels-last": replace(new, channels_last=True)}
    used = "channels-last" if CHANNELS_LAST else "NCHW"
    labels = {layout: f"{layout}{' (used)' if layout == used else ''}" for layout in layouts}
    for method in METHODS:
        rates, trainers = {}, {}
        for name, arithmetic in (("old", old), *layouts.items()):
            config = RefinerConfig(source=f"synthetic:{source}", target=f"synthetic:{target}",
                                   out=str(tmp / f"{method}-{name}"), method=method, height=128,
                                   width=64, blocks=6, batch_size=1, iterations=steps + 2)
            trainers[name] = trainer = RefinerTrainer(config, arithmetic)
            counter = iter(range(10**6))
            rates[name] = rate(lambda trainer=trainer, counter=counter:
                               trainer.step(next(counter)), 1, steps, warm=2)
        for layout, label in labels.items():
            row(f"refiner {method} 128x64 b1, {label}", "iterations/s", rates["old"],
                rates[layout])
        if method == "cyclegan":
            generator = trainers["old"].G.eval()
            batch = torch.rand(16, 3, 128, 64) * 2 - 1
            refine_rates = {}
            for name, arithmetic in (("old", old), *layouts.items()):
                arithmetic.module(generator)

                def forward(arithmetic=arithmetic, generator=generator, batch=batch) -> None:
                    with torch.no_grad(), arithmetic.autocast():
                        generator(arithmetic.images(batch)).float()
                refine_rates[name] = rate(forward, 16, max(steps // 2, 1))
            for layout, label in labels.items():
                row(f"refinement (generator) 128x64 b16, {label}", "images/s",
                    refine_rates["old"], refine_rates[layout])


def features_part(old: Compute, new: Compute, steps: int, tmp: Path) -> None:
    """Feature extraction's speed, and how far the new path's features lie from the old ones.
    Random pixels give an untrained network near-identical features, so a protocol's values on
    them would be noise: the difference is given against the features' spread across images
    (`tests/test_device.py` checks the Market protocol on features that differ)."""
    from synthreid.datasets import read_dataset
    from synthreid.reid.features import extract_features
    from synthreid.reid.model import ModelArgs, ReidModel

    root = write_set(tmp / "eval", 256, 128, 256, 0, held=128)
    dataset = read_dataset("synthetic", root)
    torch.manual_seed(0)
    model = ReidModel(ModelArgs(backbone="inception"), {"d0": 10})
    calibrate_batch_norm(model, dataset.gallery)
    features, rates = [], []
    for arithmetic in (old, new):
        arithmetic.module(model)
        for _ in range(2):  # the first pass warms up
            start = time.perf_counter()
            query = extract_features(model, dataset.query, 256, 128, arithmetic)
            extract_features(model, dataset.gallery, 256, 128, arithmetic)
            seconds = time.perf_counter() - start
        rates.append((len(dataset.query) + len(dataset.gallery)) / seconds)
        features.append(query)
    row("features inception 256x128", "images/s", *rates)
    spread = float(features[0].std(axis=0).mean())
    print(f"  features, old vs new: largest difference "
          f"{float(np.abs(features[0] - features[1]).max()):.2e}, against a spread across "
          f"images of {spread:.2e}")


def calibrate_batch_norm(model: torch.nn.Module, records) -> None:
    """Batch-norm statistics of these images: an untrained network then gives features that
    differ between images, so rankings (and their changes) mean something."""
    from synthreid.reid.data import EvalImages

    images = torch.stack([EvalImages(records, 256, 128)[i] for i in range(len(records))])
    model.train()
    with torch.no_grad():
        for _ in range(3):  # momentum 0.1: three passes settle most of the way
            model.embed(images)
    model.eval()


def render_part(steps: int, tmp: Path, fewer_samples: int) -> None:
    from synthreid.body.model import BodyModel
    from synthreid.render.renderer import Renderer
    from synthreid.scene.config import config_from_dict, load_config
    from synthreid.scene.sampling import sample_character, sample_images

    model = BodyModel()
    for height in (128, 256):
        images, seconds = {}, {}
        for name, samples, denoise in (("reference", 256, False), ("old", 16, False),
                                       ("new", fewer_samples, True)):
            data = load_config("IV").model_dump()
            data["render"].update(engine="cycles", samples=samples, denoise=denoise,
                                  device="cpu")
            data["crop"]["height_px"] = height
            config = config_from_dict(data)
            renderer = Renderer(config, model)
            warm = sample_character(config, 10_000, 0)
            renderer.render_character(warm, sample_images(config, warm, 1), tmp / "warm")
            out = tmp / f"render-{height}-{name}"
            start = time.perf_counter()
            for cid in range(steps):
                character = sample_character(config, cid, 0)
                renderer.render_character(character, sample_images(config, character, 2), out)
            seconds[name] = time.perf_counter() - start
            images[name] = sorted((out / "images").iterdir())
        count = 2 * steps
        row(f"render IV {height}px, {fewer_samples} samples+OIDN", "images/s",
            count / seconds["old"], count / seconds["new"])
        for name in ("old", "new"):
            psnr, ssim = image_quality(images["reference"], images[name])
            print(f"  {name}: PSNR {psnr:.2f} dB, SSIM {ssim:.4f} to 256 samples")


def image_quality(reference: list[Path], images: list[Path]) -> tuple[float, float]:
    from PIL import Image

    pairs = [(np.asarray(Image.open(a).convert("RGB"), np.float64) / 255,
              np.asarray(Image.open(b).convert("RGB"), np.float64) / 255)
             for a, b in zip(reference, images, strict=True)]
    return (float(np.mean([psnr(a, b) for a, b in pairs])),
            float(np.mean([ssim(a, b) for a, b in pairs])))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004) over channels, 7x7 uniform windows, images in [0, 1]."""
    from numpy.lib.stride_tricks import sliding_window_view

    def mean(x: np.ndarray) -> np.ndarray:
        return sliding_window_view(x, (7, 7), axis=(0, 1)).mean(axis=(-1, -2))

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_a, mu_b = mean(a), mean(b)
    var_a, var_b = mean(a * a) - mu_a ** 2, mean(b * b) - mu_b ** 2
    cov = mean(a * b) - mu_a * mu_b
    return float(np.mean((2 * mu_a * mu_b + c1) * (2 * cov + c2) /
                         ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", default="reid,refine,features,render")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--samples", type=int, default=4, help="the denoised renders' samples")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the table: where a re-id step's and a refiner "
                             "iteration's time goes on the new path")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    old = Compute(torch_device(), torch.float32, channels_last=False)
    new = compute()
    print(f"old: {old.describe()}; new: {new.describe()}; "
          f"{torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.profile:
            profile_part(new, args.steps, tmp)
            return
        print("| measurement | old | new | new/old | unit |\n|---|---|---|---|---|")
        if "reid" in parts:
            reid_part(old, new, args.steps)
        if "refine" in parts:
            refine_part(old, new, args.steps * 5, tmp)
        if "features" in parts:
            features_part(old, new, args.steps, tmp)
        if "render" in parts:
            render_part(args.steps, tmp, args.samples)


if __name__ == "__main__":
    main()
