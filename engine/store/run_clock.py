"""The whole run's clock: its planned parts, each with a first-guess duration, re-timed by what the run measured.

A run is a list of parts in the order it does them (engine/training/timeline.py builds it from the plan:
every feature pass the cache lacks, every augmented view, the finder's ramp, each epoch of each phase,
scoring, saving), each with a prior in seconds (from this machine's stored calibration, else a rough
guess). As parts end, their measured time over their prior gives a ratio per kind of part (views,
plain passes, first epochs, the epochs of a phase, ...). What is left is each remaining part's prior
times its kind's ratio (views after a view took 1.8x its estimate: 1.8x) or, for a kind not measured
yet, the ratio of everything measured so far taken halfway (1.8x -> 1.34x; UNMEASURED_KIND_SHARE says
why). The part under way
counts with the time it has taken and, once it reports counts, what its own measured rate says is left.

Parts are named by the run's own events (status.py maps them): a part starts when its key is first seen;
parts passed over (a cache hit, epochs early stopping skipped) cost nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

MIN_LEFT_S = 1.0  # what is said while work remains and every estimate ran out: never "0 s"
OVERRUN_SHARE = 0.2  # a part past its expected time without a rate of its own: this share of that time still to go
# A kind of part not measured yet takes the pace measured so far only halfway (in log scale: the square root of the
# ratio): the estimate's errors are partly the machine's load, shared by every part, and partly its own per kind.
# Measured (frozen, K = 3, 96 px, sample, calibration stored under another load): the views ran 0.13x their estimate,
# the validation pass 0.34x, epoch 1 0.54x, the later epochs 0.2x; the full 0.13x said 50-70 % too little.
UNMEASURED_KIND_SHARE = 0.5


@dataclass(frozen=True)
class Part:
    """One planned part of a run."""

    key: str  # as the run's events name it: "pass:validation", "pass:train view 2/3", "finder", "epoch:3", "scoring", "saving"
    kind: str  # parts that cost alike: "plain", "view", "finder", "first_epoch", "epoch1", "epoch2", "scoring", "saving"
    prior_s: float  # first-guess seconds


class RunClock:
    """Where a run stands among its planned parts, and how long the rest will take at the pace measured so far."""

    def __init__(self, parts: list[Part], startup: tuple[float, float] | None = None):
        """`startup`: (measured, estimated) seconds of building the base, the only pace known before a part runs."""
        self.parts = list(parts)
        self._measured: dict[int, float] = {}  # index of an ended part -> its seconds
        self._current: int | None = None
        self._started = 0.0  # when the current part started
        self._cursor = 0  # parts before this index have ended or were passed over
        self._startup = startup if startup and startup[1] > 0 else None

    @property
    def current(self) -> Part | None:
        return self.parts[self._current] if self._current is not None else None

    def start(self, key: str, now: float) -> bool:
        """Starts the next planned part named `key` (ending the current one); False when no such part is left."""
        if self._current is not None and self.parts[self._current].key == key:
            return False
        index = next((i for i in range(self._cursor, len(self.parts)) if self.parts[i].key == key), None)
        if index is None:
            return False
        self.end(now)
        self._current, self._started, self._cursor = index, now, index + 1
        return True

    def end(self, now: float) -> None:
        """Ends the part under way, recording how long it took."""
        if self._current is not None:
            self._measured[self._current] = max(now - self._started, 0.0)
            self._current = None

    def ratios(self, now: float, current_left: float | None = None) -> tuple[dict[str, float], float]:
        """({kind: measured / estimated} of the kinds with an ended part, the pace for the other kinds: the same
        ratio over everything measured so far, taken halfway (UNMEASURED_KIND_SHARE)).

        The part under way counts towards the overall ratio once its own rate foresees its end (`current_left`);
        before any part tells, building the base does; before that, the estimate stands (1.0).
        """
        measured, prior = defaultdict(float), defaultdict(float)
        for i, seconds in self._measured.items():
            measured[self.parts[i].kind] += seconds
            prior[self.parts[i].kind] += self.parts[i].prior_s
        per_kind = {k: measured[k] / prior[k] for k in prior if prior[k] > 0}
        total_m, total_p = sum(measured.values()), sum(prior.values())
        if self._current is not None and current_left is not None:
            total_m += now - self._started + current_left
            total_p += self.parts[self._current].prior_s
        if total_p <= 0 and self._startup:
            total_m, total_p = self._startup
        overall = total_m / total_p if total_p > 0 and total_m > 0 else 1.0
        return per_kind, overall ** UNMEASURED_KIND_SHARE

    def seconds_left(self, now: float, current_left: float | None = None) -> float:
        """Seconds until the last planned part ends; `current_left` is what the part under way's own measured rate
        says is left of it (None before it reports counts). At least MIN_LEFT_S: the run has not ended yet."""
        part = self.current
        if part is not None and current_left is None:  # no rate of its own: its estimate, or past it, a share of its time
            per_kind, overall = self.ratios(now)
            expected, spent = part.prior_s * per_kind.get(part.kind, overall), now - self._started
            if spent <= expected:
                return self._sum(expected - spent, per_kind, overall)
            current_left = OVERRUN_SHARE * spent  # slower than foreseen: news for the parts to come too (the ratio below)
        per_kind, overall = self.ratios(now, current_left)
        return self._sum(current_left or 0.0, per_kind, overall)

    def _sum(self, current_left: float, per_kind: dict[str, float], overall: float) -> float:
        left = current_left + sum(p.prior_s * per_kind.get(p.kind, overall) for p in self.parts[self._cursor:])
        return max(left, MIN_LEFT_S)
