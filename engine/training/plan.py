"""The planner: what a run will compute, decided before anything is computed.

From a config and a prepared dataset it says which passes of the frozen base a run makes
(split, view, the cuts each pass yields), the content-hashed cache key of every array, how
augmented views are named, the phases and their epochs, and whether a split is held in RAM
or streamed from disk. The run (engine/training/context.py) asks it for every key and
decision; `estimate` reads the same plan, so the two can never drift apart
(tests/test_plan.py compares the planned keys with the cache a real run writes).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

from engine.config import RunConfig
from engine.data.augmentation import augments
from engine.models import backbones
from engine.training.features import feature_key

EXTRACT_BATCH = 32  # images per forward pass when caching features (throughput, not a hyper-parameter)
ShapeOf = Callable[[str], tuple]  # cut ("" = the base's output) -> feature shape of one image


@dataclass
class Pass:
    """One pass of the frozen base over a split (one view), producing the arrays at `cuts`."""

    split: str
    cuts: tuple[str, ...]
    view: str  # "plain" or the augmented view's name (view_name)
    keys: dict[str, str]  # cut -> feature-cache key


@dataclass
class RunPlan:
    """Everything the cache keys and the RAM-or-stream decisions depend on, for one run."""

    cfg: RunConfig
    image_size: int
    weights_id: str  # identity of the base's weights (engine/models/backbones.weights_identity)
    precision: str  # the resolved dtype policy
    sizes: dict[str, int]  # split -> number of images
    fingerprint: Callable[[str], str]  # split -> content hash of its files (PreparedData.fingerprint)

    @classmethod
    def for_data(cls, cfg: RunConfig, data, image_size: int, weights_id: str, precision: str) -> "RunPlan":
        return cls(cfg, image_size, weights_id, precision, {s: len(sp) for s, sp in data.splits.items()}, data.fingerprint)

    # --- cuts, views, keys -------------------------------------------------------------
    @property
    def fine_tune_cut(self) -> str:
        return fine_tune_cut(self.cfg)

    @property
    def from_run(self) -> bool:
        """Fine-tuning continues from a finished frozen run: phase 1 is not trained here."""
        return self.cfg.approach == "fine_tuning" and bool(self.cfg.fine_tune.from_run)

    @property
    def augmented(self) -> bool:
        """Training reads K augmented views (else the plain features): feature extraction never augments."""
        return augments(self.cfg.augmentation) and self.cfg.approach != "feature_extraction"

    def view_name(self, v: int) -> str:
        """View v of the training set: seeded by (seed, v), named by every augmentation setting but K."""
        a = self.cfg.augmentation
        aug_id = {f.name: getattr(a, f.name) for f in dataclasses.fields(a) if f.name != "views"}
        return f"aug{v}:{self.cfg.fit.seed}:{feature_key(**aug_id)}"

    def key(self, split: str, cut: str, view: str) -> str:
        b = self.cfg.backbone
        return feature_key(
            files=self.fingerprint(split),
            backbone=b.name,
            alpha=b.alpha,
            weights=self.weights_id,
            image_size=self.image_size,
            preprocessing=b.preprocessing,
            cut=cut or "output",
            view=view,
            # a base computing in 16 bits gives (slightly) other features; float32 keys stay as they were
            **({"precision": self.precision} if self.precision != "float32" else {}),
        )

    def _pass(self, split: str, cuts: tuple[str, ...], view: str) -> Pass:
        return Pass(split, cuts, view, {c: self.key(split, c, view) for c in cuts})

    def plain(self, split: str, cut: str) -> Pass:
        """Plain features of a split at `cut`; validation and test also yield the fine-tuning cut in the
        same pass, so a later fine-tuning run finds them cached."""
        extra = self.fine_tune_cut if split != "train" else cut
        return self._pass(split, (cut,) if extra == cut else (cut, extra), "plain")

    def views(self, cut: str, extra_cut: str | None = None) -> list[Pass]:
        """The K augmented views of the training set at `cut` (and `extra_cut`, made in the same pass)."""
        cuts = (cut,) if extra_cut is None or extra_cut == cut else (cut, extra_cut)
        return [self._pass("train", cuts, self.view_name(v)) for v in range(self.cfg.augmentation.views)]

    def training_passes(self, cut: str, extra_cut: str | None = None) -> list[Pass]:
        """What a phase training at `cut` reads: the K views when augmenting, else the plain features."""
        return self.views(cut, extra_cut) if self.augmented else [self.plain("train", cut)]

    # --- phases --------------------------------------------------------------------------
    @property
    def fine_tunes(self) -> bool:
        """Phase 2 runs: fine-tuning with phase-2 epochs, or continuing a frozen run (phase 1 done elsewhere)."""
        return self.cfg.approach == "fine_tuning" and (self.cfg.fine_tune.epochs > 0 or self.from_run)

    def phases(self) -> list[tuple[int, str, int]]:
        """(phase, cut, epochs) this run trains: the whole base frozen (cut ""), then fine-tuning's cut."""
        out = [] if self.from_run else [(1, "", self.cfg.fit.epochs)]
        if self.fine_tunes:
            out.append((2, self.fine_tune_cut, self.cfg.fine_tune.epochs))
        return out

    def epochs_total(self, epochs_before: int = 0) -> int:
        """Epochs the run will train, both phases for fine-tuning (after a reused phase 1's `epochs_before`)."""
        return planned_epochs(self.cfg, epochs_before)

    def passes(self) -> list[Pass]:
        """Every frozen-base pass of the run, in the order the approaches request them, each array once
        (validation features made for phase 1 are read again, not recomputed, by scoring)."""
        ft = self.fine_tune_cut
        out: list[Pass] = []
        if self.cfg.approach == "feature_extraction":
            out += [self.plain("train", ""), self.plain("validation", "")]
        elif not self.from_run:  # phase 1 keeps fine-tuning's cut from the same pass
            out += self.training_passes("", ft if self.augmented else None) + [self.plain("validation", "")]
        last_cut = ""
        if self.fine_tunes:
            out += self.training_passes(ft) + [self.plain("validation", ft)]
            last_cut = ft
        out += [self.plain(s, last_cut) for s in ("validation", "test") if s in self.sizes]
        seen: set[str] = set()
        kept = []
        for p in out:
            if not set(p.keys.values()) <= seen:
                kept.append(p)
                seen.update(p.keys.values())
        return kept

    # --- in RAM or streamed ----------------------------------------------------------------
    def held_bytes(self, split: str, cut: str, cuts: tuple[str, ...], shape_of: ShapeOf, views: int = 1) -> tuple[int, int]:
        """(pixel bytes, bytes held) of keeping a split in RAM: its decoded pixels, its `views` feature
        arrays at `cut` twice (the cache's array and the training stream's tensor copy) and, while a
        view is made, the by-product cuts once (float16). Pixels alone under-count it: MobileNetV2 at
        224 px, one view's features are 0.83x the pixels, and K = 3 views held twice are 5x."""
        n = self.sizes[split]
        pixels = n * self.image_size * self.image_size * 3
        per_image = {c: 2 * math.prod(shape_of(c)) for c in cuts}
        return pixels, pixels + n * (2 * views * per_image[cut] + sum(b for c, b in per_image.items() if c != cut))

    def data_path(self, split: str, cut: str, cuts: tuple[str, ...], shape_of: ShapeOf, views: int = 1) -> dict:
        """{"path": "in_memory" | "streamed", "pixel_mb", "held_mb"}: streamed over compute.in_memory_mb."""
        pixels, held = self.held_bytes(split, cut, cuts, shape_of, views)
        return {
            "path": "streamed" if held > self.cfg.compute.in_memory_mb * 2**20 else "in_memory",
            "pixel_mb": round(pixels / 2**20, 1),
            "held_mb": round(held / 2**20, 1),
        }


def fine_tune_cut(cfg: RunConfig) -> str:
    """The layer fine-tuning unfreezes above: below the backbone's `fine_tune.unfreeze_blocks` top blocks."""
    return backbones.get_spec(cfg.backbone.name).cut_for(cfg.fine_tune.unfreeze_blocks)


def planned_epochs(cfg: RunConfig, epochs_before: int = 0) -> int:
    """Epochs a run of `cfg` trains: fit.epochs, plus fine-tuning's phase 2 (after `epochs_before` reused ones)."""
    if cfg.approach != "fine_tuning":
        return cfg.fit.epochs
    return epochs_before + cfg.fine_tune.epochs if cfg.fine_tune.from_run else cfg.fit.epochs + cfg.fine_tune.epochs
