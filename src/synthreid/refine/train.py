"""CycleGAN, PTGAN and CUT training (thesis 2.2), in the notation of the thesis: G maps generated
images (domain A) to the real camera domain B, F maps back; D_B tells real B images from G(a),
D_A tells A images from F(b).

    L = L_GAN(G, D_B) + L_GAN(F, D_A) + lambda (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)   (2.6-2.7)
        + 0.5 lambda (|G(b) - b|_1 + |F(a) - a|_1)              (identity mapping, CycleGAN)
        + mu (|(G(a) - a) M(a)|_1 + |(F(b) - b) M(b)|_1)                  (PTGAN, eq. 2.9)

PTGAN's generator loss is its paper's: adversarial + cycle + masked identity; the unmasked
identity term is off unless `identity_weight` asks for it.

Least-squares GAN losses, a pool of 50 past fakes per discriminator, Adam 2e-4 (0.5, 0.999),
constant then linearly decayed to zero. CUT (`cut.py`) replaces F, D_A and the cycle with
PatchNCE on G's encoder. Every `checkpoint_every` iterations `last.pt` holds
everything (networks, optimizers, pools, losses), so `--resume` continues exactly.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthreid import atomic, run_folder
from synthreid.errors import RefineError
from synthreid.progress import Reporter, report
from synthreid.refine import cut, losses
from synthreid.refine.config import RefinerConfig
from synthreid.refine.data import Domain, to_image, training_records
from synthreid.refine.networks import PatchDiscriminator, ResnetGenerator
from synthreid.refine.pool import ImagePool
from synthreid.torch_files import read_torch_file, save_checkpoint
from synthreid.typed import dump_config

RUN_FILES = ("config.yaml", "last.pt", "losses.csv", "samples", "tensorboard")
SAMPLES = 4  # images per row of the sample grid


def build_generator(config: RefinerConfig) -> ResnetGenerator:
    return ResnetGenerator(ngf=config.ngf, blocks=config.blocks)


class RefinerTrainer:
    def __init__(self, config: RefinerConfig) -> None:
        self.config = config
        self.out = Path(config.out)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        torch.manual_seed(config.seed)
        self.a = Domain(training_records(config.source), config.height, config.width)
        self.b = Domain(training_records(config.target), config.height, config.width)
        if config.method == "ptgan" and not self.a.has_masks:
            raise RefineError(f"{config.source}: PTGAN needs person masks for the generated "
                              f"images (an export's masks/ folder)")
        self.cut = config.method == "cut"
        self.G = build_generator(config).to(self.device)
        self.D_B = PatchDiscriminator(ndf=config.ndf).to(self.device)
        if self.cut:  # one generator; a projection head per encoder layer instead of F
            with torch.no_grad():  # the heads' input sizes: one look at G's encoder
                probe = cut.encode(self.G, torch.zeros(1, 3, config.height, config.width,
                                                       device=self.device))
            self.H = cut.PatchProjector([f.shape[1] for f in probe]).to(self.device)
            second, critics = self.H, [self.D_B]
            self.networks = ("G", "H", "D_B", "opt_G", "opt_D")
        else:
            self.F = build_generator(config).to(self.device)
            self.D_A = PatchDiscriminator(ndf=config.ndf).to(self.device)
            second, critics = self.F, [self.D_A, self.D_B]
            self.networks = ("G", "F", "D_A", "D_B", "opt_G", "opt_D")
        betas = (config.beta1, 0.999)
        self.opt_G = torch.optim.Adam(itertools.chain(self.G.parameters(), second.parameters()),
                                      lr=config.lr, betas=betas)
        self.opt_D = torch.optim.Adam(itertools.chain(*(d.parameters() for d in critics)),
                                      lr=config.lr, betas=betas)
        self.critics = critics
        self.pool_A, self.pool_B = ImagePool(config.pool_size), ImagePool(config.pool_size)
        self.iteration, self.history = 0, []
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16,
                                       enabled=self.device.type == "cuda")
        self.opened = False

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
        for name in self.networks:
            getattr(self, name).load_state_dict(state[name])
        self.pool_A.load(state["pool_A"], self.device)
        self.pool_B.load(state["pool_B"], self.device)
        self.iteration, self.history = state["iteration"], state["history"]
        return True

    def lr_factor(self, iteration: int) -> float:
        """1 until `decay_from` of the run, then linearly down to 0 at the last iteration."""
        start = int(self.config.decay_from * self.config.iterations)
        if iteration < start:
            return 1.0
        return max(0.0, 1.0 - (iteration - start) / max(self.config.iterations - start, 1))

    def step(self, iteration: int) -> dict[str, float]:
        config = self.config
        for optimizer in (self.opt_G, self.opt_D):
            for group in optimizer.param_groups:
                group["lr"] = config.lr * self.lr_factor(iteration)
        rng = np.random.default_rng([config.seed, iteration])
        a, mask_a = (t.to(self.device) if t is not None else None
                     for t in self.a.batch(rng, config.batch_size, config.flip))
        b, mask_b = (t.to(self.device) if t is not None else None
                     for t in self.b.batch(rng, config.batch_size, config.flip))
        for d in self.critics:
            d.requires_grad_(False)
        if self.cut:
            return self._step_cut(iteration, a, b, rng)
        lam = config.cycle_weight
        with self.autocast:
            fake_b, fake_a = self.G(a), self.F(b)
            terms = {"gan_G": losses.lsgan(self.D_B(fake_b), True),
                     "gan_F": losses.lsgan(self.D_A(fake_a), True),
                     "cycle_A": lam * losses.cycle(self.F(fake_b), a),
                     "cycle_B": lam * losses.cycle(self.G(fake_a), b)}
            if config.identity_weight > 0:
                weight = lam * config.identity_weight
                terms["identity_A"] = weight * losses.identity(self.F(a), a)
                terms["identity_B"] = weight * losses.identity(self.G(b), b)
            if config.method == "ptgan":
                terms["masked_A"] = config.mask_weight * losses.masked_identity(fake_b, a, mask_a)
                if mask_b is not None:
                    terms["masked_B"] = config.mask_weight * losses.masked_identity(fake_a, b,
                                                                                    mask_b)
            loss_G = sum(terms.values())
        self._finite(loss_G, iteration, "generators")
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        for d in self.critics:
            d.requires_grad_(True)
        with self.autocast:
            pooled_b = self.pool_B.query(fake_b.detach(), rng)
            pooled_a = self.pool_A.query(fake_a.detach(), rng)
            terms["D_B"] = 0.5 * (losses.lsgan(self.D_B(b), True)
                                  + losses.lsgan(self.D_B(pooled_b), False))
            terms["D_A"] = 0.5 * (losses.lsgan(self.D_A(a), True)
                                  + losses.lsgan(self.D_A(pooled_a), False))
            loss_D = terms["D_A"] + terms["D_B"]
        self._finite(loss_D, iteration, "discriminators")
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()
        return {name: float(value.detach()) for name, value in terms.items()}

    def _step_cut(self, iteration: int, a: torch.Tensor, b: torch.Tensor,
                  rng: np.random.Generator) -> dict[str, float]:
        """CUT: L_GAN(G, D_B) + nce (PatchNCE(a, G(a)) [+ PatchNCE(b, G(b))] averaged)."""
        config = self.config
        with self.autocast:
            fake_b = self.G(a)
            terms = {"gan_G": losses.lsgan(self.D_B(fake_b), True)}
            nce = cut.nce_loss(self.G, self.H, a, fake_b, rng)
            if config.nce_identity:
                nce = 0.5 * (nce + cut.nce_loss(self.G, self.H, b, self.G(b), rng))
            terms["nce"] = config.nce_weight * nce
            loss_G = sum(terms.values())
        self._finite(loss_G, iteration, "generator")
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        self.D_B.requires_grad_(True)
        with self.autocast:
            terms["D_B"] = 0.5 * (losses.lsgan(self.D_B(b), True)
                                  + losses.lsgan(self.D_B(fake_b.detach()), False))
        self._finite(terms["D_B"], iteration, "discriminator")
        self.opt_D.zero_grad(set_to_none=True)
        terms["D_B"].backward()
        self.opt_D.step()
        return {name: float(value.detach()) for name, value in terms.items()}

    def _finite(self, loss: torch.Tensor, iteration: int, what: str) -> None:
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RefineError(f"iteration {iteration}: the {what}' loss is {value}; training "
                              f"diverged (try a lower --lr); {self.out / 'last.pt'} holds the "
                              f"last checkpoint")

    def fit(self, progress: Reporter | None = None) -> dict:
        """Train to the last iteration; `progress` hears of every iteration, with the last
        logged losses as values."""
        if not self.opened:
            self.open()
        writer = run_folder.tensorboard(self.out)
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
                self.save()
            last = self.history[-1] if self.history else {}
            report(progress, "refiner", self.iteration, self.config.iterations,
                   **{k: v for k, v in last.items() if k != "iteration"})
        writer.flush()
        return {"iterations": self.iteration, "seconds": time.perf_counter() - started}

    def save(self) -> None:
        state = {name: getattr(self, name).state_dict() for name in self.networks}
        state.update(iteration=self.iteration, history=self.history,
                     pool_A=self.pool_A.state(), pool_B=self.pool_B.state(),
                     config=self.config.model_dump(mode="json"))
        save_checkpoint(state, self.out / "last.pt")

    @torch.no_grad()
    def sample_grid(self) -> Path:
        """Rows a, G(a), F(G(a)), b, F(b), G(F(b)) for the first images of each domain (CUT:
        a, G(a), b, G(b)); on PTGAN runs the masks M(a) tint the first row."""
        count_a, count_b = min(SAMPLES, len(self.a.records)), min(SAMPLES, len(self.b.records))
        a, mask_a = self.a.load(list(range(count_a)))
        b, _ = self.b.load(list(range(count_b)))
        a, b = a.to(self.device), b.to(self.device)
        with self.autocast:
            if self.cut:
                rows = [a, self.G(a), b, self.G(b)]
            else:
                g_a, f_b = self.G(a), self.F(b)
                rows = [a, g_a, self.F(g_a), b, f_b, self.G(f_b)]
        if self.config.method == "ptgan" and mask_a is not None:
            rows[0] = rows[0] * 0.6 + mask_a.to(self.device) * 0.4 * torch.tensor(
                [-1.0, 1.0, -1.0], device=self.device).view(1, 3, 1, 1)
        h, w = self.config.height, self.config.width
        grid = Image.new("RGB", (w * SAMPLES, h * len(rows)), (255, 255, 255))
        for r, row in enumerate(rows):
            for c, image in enumerate(row):
                grid.paste(to_image(image), (c * w, r * h))
        path = self.out / "samples" / f"iteration-{self.iteration:07d}.png"
        with atomic.atomic_path(path) as tmp:
            grid.save(tmp)
        return path
