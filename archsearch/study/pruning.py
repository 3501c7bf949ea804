"""Paired-seed rung pruning (``pruning:`` in a study file): stop a design early only when its seeds, compared
seed by seed with the rung's leader, say it is worse by more than the noise.

Why not Optuna's pruners (successive halving / ASHA, Hyperband, the median rule): they rank one validation value
per trial -- archsearch trains a design's seeds one after another inside a trial, so that value is the first
seed's -- and at the early steps where they cut, the ranking of single values is mostly noise
(``archsearch/report/fidelity.py`` measures it: on the main study Spearman's rho never reaches 0.9). They also
prune single-objective searches only, and compare every design with every other whatever its size.

**Lockstep.** The seeds of a trial train in lockstep: seed 0 trains to the first rung, then seed 1, ..., then
the rule below decides for the design; the seeds go on to the next rung together or stop together. Only one
seed trains at a time (each in its own thread, handing a token on; the global random states are saved and
restored at every hand-over), so every seed computes exactly what it computes alone.

**The rule** (:func:`rung_decision`), at rung step s, for design D with validation PSNR ``v_D(seed)`` on its
seeds:

* comparable designs: the trials that reported at s, in D's group (``group_by``: the parameters whose values
  make a budget-matched group; none: one group) and -- in a multi-objective search -- no worse than D on every
  other objective (parameters, MACs, latency: exact numbers, no noise), sharing at least 2 seeds with D;
* the leader L: the comparable design with the highest mean at s; D is never stopped when it leads;
* the paired differences ``d = v_D - v_L`` over the shared seeds (the same seed: the same initialisation and
  batches, so the seed's own luck cancels); their sd, floored at the pooled sd of every comparable design's
  differences with L at this rung (a 2- or 3-seed sd can be near 0 by chance);
* stop when the one-sided upper (1 - alpha) bound of the mean difference, ``mean(d) + t(1 - alpha, n - 1)
  sd / sqrt(n)``, is below ``-margin``: D is worse than L by more than the noise, at level alpha per rung.

A decision needs at least two shared seeds: never one noisy value. The rungs default to the validation steps
from a third of the schedule on (the fidelity diagnostics say where a ranking starts to hold: give them as
``rungs``).
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..claims.stats import pooled_sd, sample_sd, t_quantile

#: The trial attribute holding a trial's per-seed validation PSNR at each rung: {"step": {"seed": psnr}}.
RUNG_ATTR = "rung_psnr"
#: The trial attribute holding the decision that stopped a trial (RungDecision fields).
PRUNED_BY_ATTR = "pruned_by"


@dataclass(frozen=True)
class RungEntry:
    """One design at one rung: its key (a sweep's design point label; a search trial's number), per-seed
    validation PSNR, group key and other objectives' values (lower is better; empty for a single objective)."""

    key: Any
    values: Mapping[int, float]
    group: tuple = ()
    costs: tuple[float, ...] = ()

    @property
    def mean(self) -> float:
        return sum(self.values.values()) / len(self.values)


@dataclass(frozen=True)
class RungDecision:
    stop: bool
    step: int
    leader: Any = None  # the leader's key (a design point label, or a search trial's number)
    n: int = 0
    diff: float | None = None  # mean paired difference, this design minus the leader (dB)
    sd: float | None = None  # the sd used (after the floor)
    upper: float | None = None  # the one-sided upper bound of diff
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _shared(a: RungEntry, b: RungEntry) -> list[int]:
    return sorted(set(a.values) & set(b.values))


def rung_decision(me: RungEntry, others: Sequence[RungEntry], step: int, *, alpha: float = 0.05,
                  tolerance: float = 0.0) -> RungDecision:
    """Stop ``me`` at rung ``step``? The rule of the module docstring, on plain numbers."""
    comparable = [o for o in others if o.key != me.key and o.group == me.group
                  and all(oc <= mc for oc, mc in zip(o.costs, me.costs)) and len(_shared(me, o)) >= 2]
    if not comparable:
        return RungDecision(False, step, reason="no comparable design with 2 shared seeds at this rung yet")
    leader = max(comparable, key=lambda o: o.mean)
    if me.mean >= leader.mean:
        return RungDecision(False, step, leader.key, reason="leads its comparable designs")
    seeds = _shared(me, leader)
    d = [me.values[s] - leader.values[s] for s in seeds]
    n = len(d)
    mean = sum(d) / n
    # the floor: the pooled sd of every comparable design's paired differences with the leader at this rung
    pooled, _df = pooled_sd([[o.values[s] - leader.values[s] for s in _shared(o, leader)]
                             for o in [me, *comparable] if o.key != leader.key and len(_shared(o, leader)) >= 2])
    sd = max(sample_sd(d), pooled)
    upper = mean + t_quantile(1 - alpha, n - 1) * sd / math.sqrt(n)
    stop = upper < tolerance
    shown = "worse" if tolerance == 0 else f"at most {tolerance:g} dB better"
    why = (f"{shown if stop else 'not shown ' + shown} than {leader.key} on {n} paired seeds: "
           f"{mean:+.3f} dB, one-sided {100 * (1 - alpha):g}% upper bound {upper:+.3f} dB "
           f"{'<' if stop else '>='} {tolerance:g} (sd {sd:.3f}, pooled floor {pooled:.3f})")
    return RungDecision(stop, step, leader.key, n, mean, sd, upper, why)


def rung_entries(trials, step: int, key_of: Callable[[Any], Any], group_of: Callable[[Any], tuple],
                 costs_of: Callable[[Any], tuple]) -> list[RungEntry]:
    """The designs of the ledger's trials that reported at ``step`` (:data:`RUNG_ATTR`): the values of the trials
    that share a key (a sweep's seed trials of one design point) are pooled into one entry."""
    values: dict[Any, dict[int, float]] = {}
    first: dict[Any, Any] = {}
    for t in trials:
        at = (t.user_attrs.get(RUNG_ATTR) or {}).get(str(step))
        if at:
            key = key_of(t)
            values.setdefault(key, {}).update({int(s): float(v) for s, v in at.items()})
            first.setdefault(key, t)
    return [RungEntry(k, v, group_of(first[k]), costs_of(first[k])) for k, v in values.items()]


class Pruned(Exception):
    """A unit's thread stops: its design was stopped at a rung (or another unit failed: ``decision`` None)."""

    def __init__(self, decision: RungDecision | None):
        super().__init__(decision.reason if decision is not None else "another seed of this trial failed")
        self.decision = decision


def _settings() -> tuple:
    """The global torch settings a trainer changes for its run (``archsearch.training.deterministic_mode``)."""
    return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.utils.deterministic.fill_uninitialized_memory)


def _apply(settings: tuple) -> None:
    det, warn_only, fill = settings
    torch.use_deterministic_algorithms(det, warn_only=warn_only)
    torch.utils.deterministic.fill_uninitialized_memory = fill


class Lockstep:
    """Runs ``n`` units (the seeds of a search trial; the seed trials of a sweep's design points) as threads that
    take turns: unit i trains until it reports at a rung, hands the token to the next unit, and waits; when the
    last active unit reaches the rung, ``decide(step, values)`` (unit -> PSNR) returns the units to stop there
    (unit -> decision); they stop when they next get the token, the others go on. A unit that ends hands the
    token on. The global random states (Python, NumPy, torch) are saved when a unit hands over and restored when
    it resumes, so that a unit's numbers do not depend on the others."""

    def __init__(self, n: int, rungs: Sequence[int],
                 decide: Callable[[int, dict[int, float]], Mapping[int, RungDecision]]):
        self.n, self.rungs, self.decide = n, set(rungs), decide
        self.cv = threading.Condition()
        self.turn = 0
        self.done: set[int] = set()
        self.values: dict[int, dict[int, float]] = {}
        self.stopped: dict[int, RungDecision] = {}
        self.aborted = False
        self.saved: dict[int, tuple] = {}  # a waiting unit's random states and torch settings
        self.outer = _settings()

    # -- token passing -----------------------------------------------------------------------------------------
    def _next(self, i: int) -> None:
        for j in range(1, self.n + 1):
            k = (i + j) % self.n
            if k not in self.done:
                self.turn = k
                break
        self.cv.notify_all()

    def _wait(self, i: int) -> None:
        while self.turn != i and not self.aborted:
            self.cv.wait()
        if self.aborted:
            raise Pruned(None)
        if i in self.stopped:
            raise Pruned(self.stopped[i])
        if i in self.saved:
            py, np_state, torch_state, cuda, settings = self.saved.pop(i)
            random.setstate(py)
            np.random.set_state(np_state)
            torch.set_rng_state(torch_state)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)
            _apply(settings)

    def _save(self, i: int) -> None:
        """Unit i hands over: keep its random states and global torch settings, and put back the settings from
        before the lockstep (the next unit's trainer saves and restores those: interleaved, the units' own
        context managers would otherwise leave one unit's setting behind -- deterministic mode leaked so)."""
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        self.saved[i] = (random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda, _settings())
        _apply(self.outer)

    # -- called from the units' threads ------------------------------------------------------------------------
    def start(self, i: int) -> None:
        with self.cv:
            self._wait(i)

    def report(self, i: int, step: int, value: float) -> None:
        """Unit i validated at ``step``; at a rung it hands over, and the rung's last active unit decides."""
        if step not in self.rungs:
            return
        with self.cv:
            at = self.values.setdefault(step, {})
            at[i] = value
            # the last active unit at this rung decides (units that have ended or stopped are not waited for)
            if set(range(self.n)) - self.done - set(self.stopped) <= set(at):
                self.stopped.update(self.decide(step, dict(at)))
            if i in self.stopped:  # finish() hands the token on
                raise Pruned(self.stopped[i])
            self._save(i)
            self._next(i)
            self._wait(i)

    def finish(self, i: int, failed: bool = False) -> None:
        with self.cv:
            self.done.add(i)
            self.aborted = self.aborted or failed
            if len(self.done) < self.n:
                self._next(i)
            self.cv.notify_all()


def run_lockstep(n: int, rungs: Sequence[int],
                 decide: Callable[[int, dict[int, float]], Mapping[int, RungDecision]],
                 run_unit: Callable[[int, Callable[[int, float], None]], Any]) -> tuple[list[Any], dict[int, RungDecision]]:
    """Run ``run_unit(i, report)`` for i in 0..n-1 in lockstep (:class:`Lockstep`); return their results in order
    (None for a unit stopped at a rung) and the stopped units' decisions. A unit that raises (other than being
    stopped) ends the others at their next hand-over, and its exception is raised here."""
    step = Lockstep(n, rungs, decide)
    results: list[Any] = [None] * n
    errors: list[BaseException | None] = [None] * n

    def work(i: int) -> None:
        failed = False
        try:
            step.start(i)
            results[i] = run_unit(i, lambda s, v: step.report(i, s, v))
        except BaseException as err:  # noqa: BLE001 - handed to the caller below
            errors[i] = err
            failed = not isinstance(err, Pruned)
        finally:
            step.finish(i, failed)

    threads = [threading.Thread(target=work, args=(i,), name=f"lockstep-{i}", daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except BaseException:  # Ctrl-C in the caller: the units stop at their next hand-over (the run re-queues them)
        with step.cv:
            step.aborted = True
            step.cv.notify_all()
        raise
    real = [e for e in errors if e is not None and not isinstance(e, Pruned)]
    if real:
        raise real[0]
    return results, dict(step.stopped)
