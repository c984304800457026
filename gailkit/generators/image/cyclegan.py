"""CycleGAN (Zhu et al., 2017): unpaired translation between two image domains.

Two ResNet generators ``G: A -> B`` and ``F: B -> A`` (7x7 conv, one stride-2 down, ``n_res``
residual blocks, one stride-2 up, 7x7 conv, instance norm, tanh) and two 70x70-style PatchGAN
discriminators (a grid of real/fake logits), trained with the least-squares GAN loss, the cycle
loss ``|F(G(a)) - a| + |G(F(b)) - b|`` and the identity loss ``|G(b) - b| + |F(a) - a|``; the
discriminators see fakes through a history pool (Shrivastava et al., 2017). ``fit`` takes an
:class:`~gailkit.generators.image.sources.ImagePair` (or a tuple ``(a, b)`` of ImageData).
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gailkit.configs import doc
from gailkit.data.images import ImageData
from gailkit.errors import UnsupportedError, UsageError
from gailkit.generators import register
from gailkit.generators.base import GeneratorConfig, TorchGenerator
from gailkit.generators.image.common import check_array
from gailkit.generators.image.features import DomainJudge
from gailkit.generators.image.sources import ImagePair
from gailkit.generators.pictures import save_grid

__all__ = ["CycleGAN", "CycleGANConfig"]

_N_EXAMPLES = 64  # images per domain kept with the model, so `sample` works without data


@dataclasses.dataclass
class CycleGANConfig(GeneratorConfig):
    epochs: int = dataclasses.field(default=20, metadata=doc("passes over domain A"))
    batch_size: int = dataclasses.field(default=16, metadata=doc("images per domain per step"))
    lr: float = dataclasses.field(default=2e-4, metadata=doc("Adam learning rate (betas 0.5, 0.999)"))
    width: int = dataclasses.field(default=16, metadata=doc("channels of the generators' and critics' first layer"))
    n_res: int = dataclasses.field(default=3, metadata=doc("residual blocks per generator"))
    lambda_cycle: float = dataclasses.field(default=10.0, metadata=doc("weight of the cycle loss"))
    lambda_identity: float = dataclasses.field(default=0.5, metadata=doc("identity loss weight, times lambda_cycle"))
    pool_size: int = dataclasses.field(default=50, metadata=doc("fakes kept for the critics (0: no pool)"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "width": "[1, inf)", "n_res": "[0, inf)",
                                        "lambda_cycle": "[0, inf)", "lambda_identity": "[0, inf)",
                                        "pool_size": "[0, inf)"}


class _ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(),
                                 nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def _generator(c: int, width: int, n_res: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReflectionPad2d(3), nn.Conv2d(c, width, 7), nn.InstanceNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * width), nn.ReLU(),  # H/2
        *[_ResBlock(2 * width) for _ in range(n_res)],
        nn.ConvTranspose2d(2 * width, width, 3, stride=2, padding=1, output_padding=1),  # back to H
        nn.InstanceNorm2d(width), nn.ReLU(),
        nn.ReflectionPad2d(3), nn.Conv2d(width, c, 7), nn.Tanh(),
    )


def _patch_discriminator(c: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # H/2
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.InstanceNorm2d(2 * width), nn.LeakyReLU(0.2),  # H/4
        nn.Conv2d(2 * width, 4 * width, 4, padding=1), nn.InstanceNorm2d(4 * width), nn.LeakyReLU(0.2),  # H/4 - 1
        nn.Conv2d(4 * width, 1, 4, padding=1),  # (B, 1, H/4 - 2, W/4 - 2) patch logits
    )


class _ImagePool(nn.Module):
    """History of generated images; a module so its contents are checkpointed (exact resume)."""

    def __init__(self, size: int, shape: tuple[int, int, int]):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        """Half the time an image is swapped for an older one (once the pool is full)."""
        if self.size == 0:
            return batch
        out = []
        for image in batch.detach():
            if self.count < self.size:
                self.images[self.count] = image
                self.count += 1
                out.append(image)
            elif torch.rand(()) < 0.5:
                j = int(torch.randint(self.size, ()))
                out.append(self.images[j].clone())
                self.images[j] = image
            else:
                out.append(image)
        return torch.stack(out)


def _as_pair(data: Any) -> ImagePair:
    if isinstance(data, ImagePair):
        return data
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(d, ImageData) for d in data):
        return ImagePair(*data)
    raise UnsupportedError(f"image/cyclegan takes two image domains: an ImagePair or a tuple (ImageData, ImageData), "
                        f"got {type(data).__name__}; on the command line use --data pair:FOLDER_A,FOLDER_B or "
                        f"demo-pair")


@register("image", "cyclegan")
class CycleGAN(TorchGenerator):
    """CycleGAN: unpaired image-to-image translation between domains A and B."""

    Config = CycleGANConfig
    default_data: ClassVar[str] = "demo-pair"  # the CLI's --data when none is given

    def _shape(self) -> tuple[int, int, int]:
        return self.data_info["channels"], self.data_info["height"], self.data_info["width"]

    def _build(self) -> None:
        cfg = self.config
        c, h, w = self._shape()
        if h < 16 or w < 16 or h % 4 or w % 4:
            raise UsageError(f"image/cyclegan needs sides that are multiples of 4 and at least 16 pixels, got {h}x{w}; "
                             f"resize the data (e.g. --data pair:A,B,size=32)")
        self.g_ab, self.g_ba = _generator(c, cfg.width, cfg.n_res), _generator(c, cfg.width, cfg.n_res)
        self.d_a, self.d_b = _patch_discriminator(c, cfg.width), _patch_discriminator(c, cfg.width)
        for net in (self.g_ab, self.g_ba, self.d_a, self.d_b):
            for m in net.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.normal_(m.weight, 0.0, 0.02)  # the paper's initialisation
                    nn.init.zeros_(m.bias)
        self.pool_a, self.pool_b = _ImagePool(cfg.pool_size, (c, h, w)), _ImagePool(cfg.pool_size, (c, h, w))
        self.examples = nn.Module()
        self.examples.register_buffer("a", torch.zeros(_N_EXAMPLES, c, h, w))
        self.examples.register_buffer("b", torch.zeros(_N_EXAMPLES, c, h, w))
        self.opt_g = torch.optim.Adam(itertools.chain(self.g_ab.parameters(), self.g_ba.parameters()),
                                      lr=cfg.lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(itertools.chain(self.d_a.parameters(), self.d_b.parameters()),
                                      lr=cfg.lr, betas=(0.5, 0.999))

    def modules(self) -> dict[str, nn.Module]:
        return {"g_ab": self.g_ab, "g_ba": self.g_ba, "d_a": self.d_a, "d_b": self.d_b,
                "pool_a": self.pool_a, "pool_b": self.pool_b, "examples": self.examples}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generators": self.opt_g, "discriminators": self.opt_d}

    def _check_pair(self, data: Any) -> ImagePair:
        pair = _as_pair(data)
        if self.built and pair.shape != self._shape():
            raise UsageError(f"image/cyclegan was built for {'x'.join(map(str, self._shape()))} images (C x H x W), "
                             f"got {'x'.join(map(str, pair.shape))}; load both domains at the model's size")
        return pair

    def prepare(self, data: Any) -> tuple[torch.Tensor, ...]:
        pair = self._check_pair(data)
        a, b = (torch.from_numpy(np.array(d.images)) for d in (pair.a, pair.b))
        if not self.built:
            self.build(pair.info())
            g = torch.Generator().manual_seed(self.config.seed)
            self.examples.a.copy_(a[torch.randint(len(a), (_N_EXAMPLES,), generator=g)])
            self.examples.b.copy_(b[torch.randint(len(b), (_N_EXAMPLES,), generator=g)])
        self._b = b * 2 - 1  # domain B is drawn at random for each batch of A (the domains are unpaired)
        return (a * 2 - 1,)

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        (real_a,) = batch
        real_b = self._b[torch.randint(len(self._b), (len(real_a),))]
        cfg = self.config
        fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)
        logits_fb, logits_fa = self.d_b(fake_b), self.d_a(fake_a)
        adversarial = (F.mse_loss(logits_fb, torch.ones_like(logits_fb))
                       + F.mse_loss(logits_fa, torch.ones_like(logits_fa)))
        cycle = F.l1_loss(self.g_ba(fake_b), real_a) + F.l1_loss(self.g_ab(fake_a), real_b)
        loss_g = adversarial + cfg.lambda_cycle * cycle
        identity = torch.zeros(())
        if cfg.lambda_identity:
            identity = F.l1_loss(self.g_ab(real_b), real_b) + F.l1_loss(self.g_ba(real_a), real_a)
            loss_g = loss_g + cfg.lambda_cycle * cfg.lambda_identity * identity
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()

        loss_d = torch.zeros(())
        for disc, real, fake in ((self.d_a, real_a, self.pool_a.query(fake_a)),
                                 (self.d_b, real_b, self.pool_b.query(fake_b))):
            real_logits, fake_logits = disc(real), disc(fake.detach())
            loss_d = loss_d + 0.5 * (F.mse_loss(real_logits, torch.ones_like(real_logits))
                                     + F.mse_loss(fake_logits, torch.zeros_like(fake_logits)))
        self.opt_d.zero_grad()  # also clears what the generator step left in the critics
        loss_d.backward()
        self.opt_d.step()
        return {"loss_g": adversarial.item(), "loss_d": loss_d.item(), "cycle": cycle.item(),
                "identity": identity.item()}

    @torch.no_grad()
    def translate(self, images: Any, *, direction: str = "a2b") -> np.ndarray:
        """Translate images (N, C, H, W) in [0, 1]: ``"a2b"`` by G, ``"b2a"`` by F."""
        self._require_built("translate")
        if direction not in ("a2b", "b2a"):
            raise ValueError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
        x = check_array(images, self._shape(), who="image/cyclegan.translate")
        net = self.g_ab if direction == "a2b" else self.g_ba
        net.eval()
        return torch.cat([(net(x[i:i + 256] * 2 - 1) + 1) / 2 for i in range(0, len(x), 256)]).clamp(0, 1).numpy()

    def sample(self, n: int, *, seed: int | None = None, direction: str = "a2b", **kwargs: Any) -> np.ndarray:
        """Translations of ``n`` of the example images kept from training (drawn with ``seed``)."""
        self._require_built("sample")
        source = self.examples.a if direction == "a2b" else self.examples.b
        idx = torch.randint(len(source), (n,), generator=torch.Generator().manual_seed(0 if seed is None else seed))
        return self.translate(source[idx].numpy(), direction=direction)

    def save_samples(self, path: str | Path, *, n: int = 64, seed: int = 0) -> Path:
        """Rows of ``min(n, 8)`` examples: a, G(a), F(G(a)), then b, F(b), G(F(b))."""
        self._require_built("save_samples")
        k = max(1, min(n, 8))
        g = torch.Generator().manual_seed(seed)
        a = self.examples.a[torch.randint(_N_EXAMPLES, (k,), generator=g)].numpy()
        b = self.examples.b[torch.randint(_N_EXAMPLES, (k,), generator=g)].numpy()
        ga, fb = self.translate(a, direction="a2b"), self.translate(b, direction="b2a")
        rows = [a, ga, self.translate(ga, direction="b2a"), b, fb, self.translate(fb, direction="a2b")]
        return save_grid(np.concatenate(rows), path, nrow=k)

    def evaluate(self, data: Any, *, judge_steps: int = 300, seed: int = 0, **kwargs: Any) -> dict[str, float]:
        """Domain-judge accuracy on translations and cycle errors, on held-out pairs.

        A :class:`DomainJudge` is trained on the first half of each domain of ``data`` (real A
        vs real B); on the second halves it reports ``judge_real_acc`` (its accuracy on real
        images), ``judge_a2b`` (fraction of G(a) it calls B) and ``judge_b2a`` (of F(b) it calls
        A). ``cycle_a = mean |F(G(a)) - a|`` and ``cycle_b = mean |G(F(b)) - b|`` per pixel on all of ``data``.
        """
        self._require_built("evaluate")
        pair = self._check_pair(data)
        a, b = np.array(pair.a.images), np.array(pair.b.images)
        if min(len(a), len(b)) < 4:
            raise UsageError(f"image/cyclegan.evaluate needs at least 4 images per domain, got {len(a)} and {len(b)}")
        ga, fb = self.translate(a, direction="a2b"), self.translate(b, direction="b2a")
        ha, hb = len(a) // 2, len(b) // 2
        judge = DomainJudge(a.shape[1], seed=seed).fit(a[:ha], b[:hb], steps=judge_steps)
        real_acc = np.concatenate([judge.prob_b(a[ha:]) < 0.5, judge.prob_b(b[hb:]) >= 0.5]).mean()
        return {
            "judge_real_acc": float(real_acc),
            "judge_a2b": float((judge.prob_b(ga[ha:]) >= 0.5).mean()),
            "judge_b2a": float((judge.prob_b(fb[hb:]) < 0.5).mean()),
            "cycle_a": float(np.abs(self.translate(ga, direction="b2a") - a).mean()),
            "cycle_b": float(np.abs(self.translate(fb, direction="a2b") - b).mean()),
        }
