"""The learning-rate range test itself: the ramp, one optimizer step per rate, and the rules that read a rate off it.

Leslie Smith's range test, as fastai's `lr_find` runs it: one optimizer step per rate, the rate
growing evenly on a log scale from `start_lr` to `end_lr`, stopping once the loss blows up;
fastai's valley and steepest-descent rules. `ramp_stage` runs it on what a run trains (a stage
of `RunContext` and its cached arrays), leaving the stage's weights as they were: the finder
(engine/training/lr_finder.py) builds such a context without a run, and a run with
`fit.find_learning_rate` ramps its own before phase 1 (RunContext.phase_one_rate).

Written by hand (about 40 lines): Keras has no range test, and KerasTuner/Optuna search by
training whole runs, which is what the finder exists to avoid.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import numpy as np

from engine.config import ConfigError, field_problem, knob

# Imported by the CLI's parser, so nothing here imports Keras at module level (`scan`, `predict` of a
# broken file answer without TensorFlow); a progress callback and a stop check default to doing nothing.
Progress = Callable[[dict], None]
StopCheck = Callable[[], bool]


def _no_progress(event: dict) -> None:
    pass


def _never_stop() -> bool:
    return False


RULES = {"valley": "fastai's valley rule", "steepest": "steepest descent of the smoothed loss"}


@dataclass
class FinderSettings:
    """The ramp's knobs; `lr-find`'s flags are made from their metadata (engine/cli/flags.add_settings_flags)."""

    start_lr: float = knob(1e-7, "first learning rate of the ramp", min=1e-12, max=10.0)  # [1e-12, 10]
    end_lr: float = knob(
        1.0, "last learning rate (the ramp ends earlier when the loss blows up)", min=1e-12, max=10.0
    )  # [1e-12, 10]
    steps: int = knob(
        100,
        "optimizer steps, one learning rate each, evenly spaced on a log scale",
        min=10,
        max=1000,
        integer=True,
        message="must be between {min:g} and {max:g} (about 100 is usual), got {value}",
    )  # 10-1000
    # the loss's moving average (debiased) that is plotted and read; 100 steps suit 0.9, not fastai's 0.98
    smoothing: float = field(default=0.9)
    blowup: float = field(default=4.0)  # stop once the smoothed loss is this many times its lowest so far
    rule: str = knob(
        "valley",
        "which rate to suggest: valley (fastai's default) or steepest (descent of the smoothed loss)",
        choices=tuple(RULES),
    )

    def check(self) -> None:
        for f in fields(self):
            problem = field_problem(getattr(self, f.name), f.metadata) if f.metadata else ""
            if problem:
                raise ConfigError(f"--{f.name.replace('_', '-')}: {problem}")
        if not self.start_lr < self.end_lr:
            raise ConfigError(f"--start-lr/--end-lr: need start < end, got {self.start_lr:g} and {self.end_lr:g}")


@dataclass
class FinderResult:
    approach: str
    learning_rates: list[float]  # one per step taken
    losses: list[float]  # the training loss of each step's batch
    smoothed: list[float]  # their debiased moving average
    suggested: float | None  # by `rule`; None when too few steps ran to read one
    rule: str
    steepest: float | None
    valley: float | None
    ended: str  # "blew up at ...", "reached end_lr", "stopped by request"
    seconds: float
    feature_cache: dict = field(default_factory=dict)  # hits/misses: 0 misses means the base never ran

    def to_dict(self) -> dict:
        return asdict(self)


def ramp(settings: FinderSettings) -> np.ndarray:
    return np.geomspace(settings.start_lr, settings.end_lr, settings.steps)


def smooth(losses, beta: float) -> np.ndarray:
    """Exponential moving average with bias correction (so the first values are not pulled to 0)."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * float(loss)
        out.append(avg / (1 - beta**i))
    return np.asarray(out)


def steepest_rate(lrs, smoothed) -> float | None:
    """The rate where the smoothed loss falls fastest per decade of learning rate, after the first tenth of the
    ramp (there the average holds a few noisy batches: measured on cats_vs_dogs_small, its slope pointed at 1e-6)
    and before the loss's minimum (past it the loss blows up, and a diverged loss coming down again is no rate)."""
    if len(smoothed) < 5:
        return None
    skip = len(smoothed) // 10
    end = max(int(np.nanargmin(smoothed)) + 1, skip + 2)  # past the minimum the loss blows up: a fall there is noise
    s, r = np.asarray(smoothed, dtype=float)[skip:end], np.asarray(lrs, dtype=float)[skip:end]
    slopes = np.diff(s) / np.diff(np.log10(r))
    return float(r[int(np.nanargmin(slopes))])


def valley_rate(lrs, smoothed) -> float | None:
    """fastai's `valley`: the longest stretch over which the loss keeps falling; a rate a little past its
    first third, i.e. well down the slope and still well before the minimum (where training diverges)."""
    n = len(smoothed)
    if n < 5:
        return None
    longest = [1] * n  # the longest decreasing subsequence ending at i (bumps of noise are stepped over)
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if smoothed[i] < smoothed[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[end] < longest[i]:
            end, start = i, i - longest[i]  # as fastai computes it
    third = (end - start) / 3
    return float(lrs[start + int(third) + int(third / 2)])


def suggest(lrs, losses, settings: FinderSettings) -> dict:
    smoothed = smooth(losses, settings.smoothing)
    rates = {"steepest": steepest_rate(lrs, smoothed), "valley": valley_rate(lrs, smoothed)}
    return {"smoothed": smoothed, **rates, "suggested": rates[settings.rule]}


def run_ramp(
    top,
    arrays: list[np.ndarray],
    labels: np.ndarray,
    batch: int,
    settings: FinderSettings,
    seed: int,
    should_stop: StopCheck = _never_stop,
    progress: Progress = _no_progress,
) -> tuple[list, list, str]:
    """(rates, losses, how it ended): one `train_on_batch` per rate on seeded random batches of the cached arrays."""
    rng = np.random.default_rng(seed)
    rates, losses, best, ended = [], [], math.inf, f"reached end_lr {settings.end_lr:g}"
    for i, lr in enumerate(ramp(settings), start=1):
        if should_stop():
            ended = "stopped by request"
            break
        view = arrays[int(rng.integers(len(arrays)))]
        idx = np.sort(rng.choice(len(labels), size=min(batch, len(labels)), replace=False))  # sorted: memory-mapped reads
        top.optimizer.learning_rate = float(lr)
        loss = float(top.train_on_batch(np.asarray(view[idx], np.float32), labels[idx], return_dict=True)["loss"])
        rates.append(float(lr))
        losses.append(loss)
        current = float(smooth(losses, settings.smoothing)[-1])  # a hundred steps: recomputing is cheaper than a twin
        best = min(best, current)
        if i % 10 == 0:
            progress(
                {"type": "status", "message": f"learning-rate finder: step {i}/{settings.steps}, lr {lr:.2g}, loss {current:.4f}"}
            )
        if not math.isfinite(loss) or (i > settings.steps // 10 and current > settings.blowup * best):
            ended = f"the loss blew up at lr {lr:.2g}"
            break
    return rates, losses, ended


def ramp_stage(ctx, stage, arrays: list, settings: FinderSettings | None = None, t0: float | None = None) -> FinderResult:
    """The range test on what `ctx`'s run trains (`stage.top` on `arrays`), leaving the stage's weights as they were:
    a run with `fit.find_learning_rate` ramps here, then trains from the same initial weights at the suggestion."""
    from engine.models import modeling

    settings, t0 = settings or FinderSettings(), time.perf_counter() if t0 is None else t0
    cfg = ctx.cfg
    initial = stage.top.get_weights()
    modeling.compile_model(stage.top, ctx.num_classes, cfg.fit.optimizer, settings.start_lr)
    ctx.progress(
        {
            "type": "status",
            "message": f"learning-rate finder: {settings.steps} steps from {settings.start_lr:g} to {settings.end_lr:g}",
        }
    )
    rates, losses, ended = run_ramp(
        stage.top, arrays, ctx.labels("train"), cfg.fit.batch_size, settings, cfg.fit.seed, ctx.should_stop, ctx.progress
    )
    stage.top.set_weights(initial)
    s = suggest(rates, losses, settings)
    return FinderResult(
        cfg.approach,
        rates,
        losses,
        [float(v) for v in s["smoothed"]],
        s["suggested"],
        settings.rule,
        s["steepest"],
        s["valley"],
        ended,
        round(time.perf_counter() - t0, 3),
        ctx.cache.stats(),
    )
