"""The whole run's clock: its planned parts, each with a first-guess duration, re-timed by what the run measured.

A run is a list of parts in the order it does them (engine/training/timeline.py builds it from the plan:
every feature pass the cache lacks, every augmented view, the finder's ramp, each epoch of each phase,
scoring, saving), each with a prior in seconds (from this machine's stored calibration, else a rough
guess). A part may begin with a setup (`setup_s`: tracing its function and decoding its images, before
its first counted batch), measured apart as kind "setup": a calibration's one-off tracing says little
of a run's, and the per-image work scales otherwise.

As pieces end, their measured time over their prior gives a ratio per kind (setups, views, plain passes,
the epochs of a phase, ...). What is left is each remaining piece's prior times its kind's ratio (views
after a view took 1.8x its estimate: 1.8x) or, for a kind not measured yet, the ratio of everything
measured so far (UNMEASURED_KIND_SHARE says what was tried). The piece under way counts
with the time it has taken and, once it reports counts, what its own measured rate says is left.

Parts are named by the run's own events (status.py maps them): a part starts when its key is first seen,
its body with its first counted batch; parts passed over (a cache hit, epochs early stopping skipped)
cost nothing.

Checkpoints are pieces of their own (kind "save"): an epoch saves the model only when its validation loss
improved, which the early epochs of a phase nearly always do and the late ones seldom (measured: epochs
2-4 of the sample 0.9 s with their save, 5-6 0.47 s without). An epoch's own piece leaves its save out, and
the saves still to come in a phase are `saves_per_phase` less those it made, at most one per epoch left.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

MIN_LEFT_S = 1.0  # what is said while work remains and every estimate ran out: never "0 s"
OVERRUN_SHARE = 0.2  # a piece past its expected time without a rate of its own: this share of that time still to go
# A kind not measured yet takes this power of the pace measured so far: 1 = all of it (the rule: a part
# 1.8x slower than estimated makes the rest 1.8x longer). Tried on the sample (frozen, K = 3, 96 px, a calibration
# stored under another load, setups measured apart): 0.5 said 30-65 % too much, 1.0 30-45 % too little while the
# views ran. Kept at 1.0, the rule as stated: what was left over were the priors' own errors per kind.
UNMEASURED_KIND_SHARE = 1.0
TRUSTED_SHARE = 0.25  # a piece under way foresees its own end for the others only past this share of its counts
SETUP = "setup"  # the kind of every part's setup piece
SAVE = "save"  # the kind of an epoch's checkpoint save


@dataclass(frozen=True)
class Part:
    """One planned part of a run."""

    key: str  # as the run's events name it: "pass:validation", "pass:train view 2/3", "finder", "epoch:3", "scoring", "saving"
    kind: str  # parts that cost alike: "plain", "view", "finder", "epoch1", "epoch2", "scoring", "saving"
    prior_s: float  # first-guess seconds of its body (its counted work)
    setup_s: float = 0.0  # first-guess seconds before its first counted batch (tracing, decoding)
    save_s: float = 0.0  # an epoch's: first-guess seconds of a checkpoint save, if its validation loss improves


class RunClock:
    """Where a run stands among its planned parts, and how long the rest will take at the pace measured so far."""

    def __init__(self, parts: list[Part], saves_per_phase: int = 4):
        """Before any piece is measured the estimates stand: building the base, once taken as the pace, said 52 s
        for a 37 s run with a calibration (+41 %) and 9.6 s without one (-74 %, the bar at 0.29 after 4 s).
        `saves_per_phase`: the checkpoints a phase is expected to save (its epochs that improve)."""
        self.parts = list(parts)
        self.saves_per_phase = saves_per_phase
        self._saves: dict[str, int] = defaultdict(int)  # checkpoints saved, per epoch kind (phase)
        self._saved_now = 0.0  # seconds of the piece under way spent saving (measured apart)
        self._saved_in_part = False  # the epoch under way saved its checkpoint
        self._measured: list[tuple[str, float, float]] = []  # (kind, seconds, prior) of every piece that ended
        self._current: int | None = None
        self._started = 0.0  # when the current piece started
        self._in_body = False  # the current part is past its setup
        self._cursor = 0  # parts before this index have ended or were passed over

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
        self._saved_in_part = False
        self._in_body = self.parts[index].setup_s <= 0
        return True

    def begin_body(self, now: float) -> None:
        """The current part reported its first counted batch: its setup ended."""
        part = self.current
        if part is not None and not self._in_body:
            self._measured.append((SETUP, max(now - self._started - self._saved_now, 0.0), part.setup_s))
            self._started, self._in_body, self._saved_now = now, True, 0.0

    def saved(self, seconds: float) -> None:
        """The epoch under way saved a checkpoint, in `seconds`: a piece of its own, left out of the epoch's."""
        part = self.current
        if part is None or part.save_s <= 0:
            return
        self._measured.append((SAVE, max(seconds, 0.0), part.save_s))
        self._saves[part.kind] += 1
        self._saved_now += max(seconds, 0.0)
        self._saved_in_part = True

    def end(self, now: float) -> None:
        """Ends the part under way, recording how long it took (one piece, when it never reported counts)."""
        part = self.current
        if part is not None:
            prior = part.prior_s if self._in_body else part.prior_s + part.setup_s
            self._measured.append((part.kind, max(now - self._started - self._saved_now, 0.0), prior))
            self._current, self._saved_now = None, 0.0

    def _piece(self) -> tuple[str, float] | None:
        """(kind, prior) of the piece under way."""
        part = self.current
        if part is None:
            return None
        return (part.kind, part.prior_s) if self._in_body else (SETUP, part.setup_s)

    def ratios(self, now: float, current_left: float | None = None, current_share: float = 1.0) -> tuple[dict[str, float], float]:
        """({kind: measured / estimated} of the kinds measured, the pace for the other kinds: the same ratio over
        everything measured so far (to the power UNMEASURED_KIND_SHARE)).

        The piece under way counts towards the overall ratio once its end is foreseen (`current_left`) from at least
        TRUSTED_SHARE of its counts (`current_share`: its first batches run slow); before any piece tells, the
        estimate stands (1.0).
        """
        measured, prior = defaultdict(float), defaultdict(float)
        for kind, seconds, estimate in self._measured:
            measured[kind] += seconds
            prior[kind] += estimate
        per_kind = {k: measured[k] / prior[k] for k in prior if prior[k] > 0 and measured[k] > 0}
        total_m, total_p = sum(measured.values()), sum(prior.values())
        piece = self._piece()
        if piece is not None and current_left is not None and current_share >= TRUSTED_SHARE:
            # not its kind's: epoch 1's steps run slow (warming up), and read as epochs 2-6's pace they said +53 %
            total_m += now - self._started - self._saved_now + current_left
            total_p += piece[1]
        overall = total_m / total_p if total_p > 0 and total_m > 0 else 1.0
        return per_kind, overall**UNMEASURED_KIND_SHARE

    def seconds_left(self, now: float, current_left: float | None = None, current_share: float = 1.0) -> float:
        """Seconds until the last planned part ends; `current_left` is what the part under way's own measured rate
        says is left of its body (None before it reports counts), `current_share` the share of its counts done.
        At least MIN_LEFT_S: the run has not ended yet."""
        piece = self._piece()
        if piece is not None and current_left is None:  # no rate of its own: its estimate, or past it, a share of its time
            per_kind, overall = self.ratios(now)
            expected, spent = piece[1] * per_kind.get(piece[0], overall), now - self._started - self._saved_now
            if spent <= expected:
                return self._sum(expected - spent, per_kind, overall)
            current_left = OVERRUN_SHARE * spent  # slower than foreseen: news for the parts to come too (the ratio below)
        per_kind, overall = self.ratios(now, current_left, current_share)
        return self._sum(current_left or 0.0, per_kind, overall)

    def _sum(self, current_left: float, per_kind: dict[str, float], overall: float) -> float:
        def cost(kind: str, prior: float) -> float:
            return prior * per_kind.get(kind, overall)

        left = current_left
        part = self.current
        if part is not None and not self._in_body:  # the body after the setup under way
            left += cost(part.kind, part.prior_s)
        ahead = self.parts[self._cursor :]
        left += sum(cost(SETUP, p.setup_s) + cost(p.kind, p.prior_s) for p in ahead)
        left += sum(cost(SAVE, save_s) for save_s in self._saves_ahead(ahead))
        return max(left, MIN_LEFT_S)

    def _saves_ahead(self, ahead: list[Part]) -> list[float]:
        """The first-guess seconds of each checkpoint still to come: per phase, `saves_per_phase` less those made,
        at most one per epoch left (the one under way counts while it has not saved)."""
        epochs = [p for p in ahead if p.save_s > 0]
        part = self.current
        if part is not None and part.save_s > 0 and not self._saved_in_part:
            epochs.insert(0, part)
        saves: list[float] = []
        for kind in dict.fromkeys(p.kind for p in epochs):
            of_kind = [p.save_s for p in epochs if p.kind == kind]
            saves += of_kind[: max(self.saves_per_phase - self._saves[kind], 0)]
        return saves
