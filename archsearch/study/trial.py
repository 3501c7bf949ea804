"""The execution of one trial: solve the budget, build, train, evaluate, record.

Everything a trial needs is read from the :class:`~archsearch.study.config.Study` and the trial's parameters, so
the same function (:func:`run_trial`) runs in the local executor, in its worker processes and inside Ray Tune.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import save_file

from ..atomic import atomic_path, write_text
from ..builder import build
from ..counting import count
from ..errors import ArchsearchError, BudgetError, SpecError, infrastructure_reason, is_infrastructure
from ..evaluate import evaluate
from ..latency import measure_latency
from ..solver import Solution
from ..spec import GraphSpec
from ..text import shown
from ..tracking import open_run
from ..training import train
from ..weights import WeightsError
from .checkpoints import load_published
from .config import Study
from .images import study_baseline, study_data
from .ledger import this_host
from .pruning import PRUNED_BY_ATTR, RUNG_ATTR, Pruned, run_lockstep, rung_decision, rung_entries
from .record import TRIAL_ATTRS, check_attrs
from .sampling import INTERRUPTED, OBJECTIVE_ATTRS, is_retryable
from .sweep import solve_design
from .validity import classify, combine


class TrialFailed(ArchsearchError):
    """A trial that ended without a result (diverged, infeasible, error); ``reason`` goes to the ledger."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class TrialPruned(Exception):
    """Raised when the pruner stops a trial at an intermediate validation step."""


def last_third_gain(history, steps: int) -> float | None:
    """Validation PSNR gained over the last third of training: the final value minus the last validation at or
    before step 2/3 of the run (None without such a validation). A large gain means the run stopped while the
    model was still improving -- it is under-trained, and comparisons at this schedule are not the paper's."""
    if not history:
        return None
    mark = 2 * steps / 3
    before = [p for s, p in history if s <= mark]
    return float(history[-1][1] - before[-1]) if before and history[-1][0] > mark else None


def execute(study: Study, design_name: str, arguments: dict[str, Any], seed: int, *, report=None,
            checkpoint_name: str | None = None, progress: bool = False, on_spec=None,
            trial: int | None = None, label: str | None = None, run_name: str | None = None) -> dict[str, Any]:
    """Run one trial and return its attributes (counts, metrics, timings, paths).

    ``on_spec(attrs)`` receives the spec's attributes (hash, path, counts) before training starts, so a trial that
    is later pruned or fails still records what it was. ``report(step, val_psnr)`` is called at each validation
    step; it raises :class:`TrialPruned` to stop.
    Raises :class:`TrialFailed` with a reason when the budget cannot be met or training diverges.
    With the study's ``tracking`` on, the training curves go to TensorBoard/MLflow as run ``run_name`` of the
    study's experiment, tagged with ``trial``, ``label``, the seed and the spec hash (:mod:`archsearch.tracking`).
    """
    t_start = time.perf_counter()
    design = study.space.design(design_name)
    try:
        sol = solve_design(study.config.budget, design, arguments)
    except (BudgetError, SpecError) as err:
        raise TrialFailed(f"infeasible: {err}") from None
    spec = sol.spec if isinstance(sol, Solution) else sol
    counts = count(spec)
    out = study.output_dir
    spec_path = out / "specs" / f"{spec.hash}.yaml"
    if not spec_path.exists():
        try:  # a full disk or a read-only folder fails the machine, not the design: recorded as such, re-queued
            spec_path.parent.mkdir(parents=True, exist_ok=True)
            spec.save(spec_path)
        except OSError as err:
            raise TrialFailed(infrastructure_reason(err)) from None
    attrs: dict[str, Any] = {
        # paths relative to the output folder: the ledger stays valid wherever a command runs, or the folder moves
        "design": design.name, "seed": seed, "spec_hash": spec.hash, "spec_path": str(spec_path.relative_to(out)),
        "n_params": counts.params, "macs_per_pixel": counts.macs_per_pixel,
        "activation_param_pct": counts.activation_param_pct,
        "arguments": {k: v for k, v in (sol.arguments if isinstance(sol, Solution) else {**design.fixed,
                                                                                          **arguments}).items()},
    }
    if on_spec is not None:
        on_spec(dict(attrs))
    task, train_images, val_images, test_images = study_data(study)
    # the study file's own `training.progress` wins over the caller's default
    config = dataclasses.replace(study.train, seed=seed,
                                 progress=study.train.progress if "progress" in study.config.training else progress)
    torch.manual_seed(seed)
    model = build(spec)
    if design.published:  # the authors' weights: evaluated as they are, never trained
        _load_published(study, design, model, attrs)
        t_overhead, tracking, result = time.perf_counter() - t_start, None, None
    else:
        t_overhead = time.perf_counter() - t_start
        t0 = time.perf_counter()
        tracking = open_run(study.config.tracking, experiment=study.name, run_name=run_name or checkpoint_name
                            or f"{spec.hash}_seed{seed}", base_dir=out,
                            tags={"study": study.name, "trial": trial, "label": label, "design": design.name,
                                  "seed": seed, "spec_hash": spec.hash})
        try:
            result = train(model, task, train_images, val_images, config, report=report, callback=tracking)
        except BaseException:
            if tracking is not None:
                tracking.finish("failed")
            raise
        attrs["train_time_s"] = time.perf_counter() - t0
        attrs["steps"] = result.steps
        attrs["steps_per_second"] = result.steps_per_second
        # throughput settings that can change the numbers in the last digits (see TrainConfig): recorded per trial
        attrs["train_settings"] = {"threads": torch.get_num_threads(),
                                   "channels_last": result.config["channels_last"], "amp": config.amp,
                                   "compile": config.compile, "deterministic": config.deterministic}
        attrs["val_gain_last_third"] = last_third_gain(result.val_history, config.steps)
        if result.diverged:
            if tracking is not None:
                tracking.finish(result.status)
            raise TrialFailed(f"diverged: {result.reason}")
        attrs["val_psnr"] = result.final_val_psnr
    t1 = time.perf_counter()
    ev = _test(study, model, task, test_images, attrs)
    attrs["eval_time_s"] = time.perf_counter() - t1
    if tracking is not None:
        tracking.finish(result.status, {"test/psnr": ev.psnr, "test/ssim": ev.ssim}, step=result.steps)
    if not math.isfinite(ev.psnr):
        raise TrialFailed(f"error: published weights score a test PSNR of {ev.psnr}" if design.published
                          else f"diverged: test PSNR is {ev.psnr}")
    t2 = time.perf_counter()
    _save_checkpoint(study, model, spec, attrs, checkpoint_name or f"{spec.hash}_seed{seed}")
    attrs["overhead_s"] = t_overhead + (time.perf_counter() - t2)
    attrs["wall_time_s"] = time.perf_counter() - t_start
    return attrs


def _load_published(study: Study, design, model, attrs: dict[str, Any]) -> None:
    """A published checkpoint's weights, loaded through the one loader into ``model``; ``attrs`` records the file,
    its sha256 and that nothing was trained (0 steps)."""
    try:
        path, digest = load_published(model, design, study.config.data.data_root)
    except (ValueError, WeightsError) as err:
        raise TrialFailed(f"error: published weights: {err}") from None
    attrs.update({"published_weights": shown(path), "weights_sha256": digest, "steps": 0, "train_time_s": 0.0,
                  "val_psnr": None, "val_gain_last_third": None})


def _test(study: Study, model, task, test_images, attrs: dict[str, Any]):
    """Score the model on the study's test images at its draws and protocol, beside the trivial baseline on the
    same images and draws (scored once per process); store both and this seed's validity in ``attrs``."""
    draws, protocol = study.config.data.test_draws, study.config.data.protocol
    ev = evaluate(model, task, test_images, seed=0, draws=draws, protocol=protocol)
    attrs["psnr"], attrs["ssim"], attrs["n_test_images"] = ev.psnr, ev.ssim, ev.n_images
    attrs["test_draws"] = draws
    if protocol != "default":
        attrs["test_protocol"] = protocol
    base = study_baseline(study)
    attrs["baseline"], attrs["baseline_psnr"], attrs["baseline_ssim"] = task.baseline_name, base.psnr, base.ssim
    attrs["baseline_per_image"] = base.rows()
    attrs["_per_image"] = ev.rows()  # per seed: aggregate() gathers them into per_image_per_seed
    attrs["_validity"] = classify(ev.psnr, base.psnr) if math.isfinite(ev.psnr) else "degenerate"
    return ev


def _save_checkpoint(study: Study, model, spec: GraphSpec, attrs: dict[str, Any], name: str) -> None:
    """The trial's weights as safetensors in the output folder (whole or not at all; a full disk fails the
    machine, not the design); ``attrs`` gets its path and the spec for the latency."""
    out = study.output_dir
    ckpt = out / "checkpoints" / f"{name}.safetensors"
    try:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(ckpt) as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp),
                      metadata={"spec_hash": spec.hash, "spec_path": str(out / attrs["spec_path"])})
    except OSError as err:
        raise TrialFailed(infrastructure_reason(err)) from None
    attrs["checkpoint"] = str(ckpt.relative_to(out))
    attrs["_spec"] = spec  # for the trial's latency (not stored: run_trial pops it)


# ---------------------------------------------------------------------------------------------------------
# the one trial path: both executors call run_trial and record its Outcome
# ---------------------------------------------------------------------------------------------------------
class Recorder(Protocol):
    """Where a running trial writes: the local executor wraps an Optuna trial, the Ray executor the storage row of
    the trial that Ray Tune's OptunaSearch asked for. Each intermediate value is written once, at its step."""

    number: int

    def set_attr(self, key: str, value: Any) -> None: ...

    def report(self, step: int, value: float) -> None: ...

    def should_prune(self) -> bool: ...


@dataclass
class Outcome:
    """How a trial ended: ``state`` (COMPLETE, PRUNED or FAIL), the attributes to store and, for COMPLETE, the
    objective values in the order of the study's objectives."""

    state: str
    attrs: dict[str, Any]
    values: list[float] | None = None

    def __post_init__(self) -> None:
        check_attrs(self.attrs)


def objective_values(study: Study, attrs: dict[str, Any]) -> list[float]:
    """The objective values of a finished trial (PSNR first), in the order of ``search.objectives``."""
    values = [float(attrs["psnr"])]
    if study.config.search is not None:
        for obj in study.config.search.objectives[1:]:
            values.append(float(attrs[OBJECTIVE_ATTRS[obj]]))
    return values


def aggregate(results: list[dict[str, Any]], curve: list[list[float]]) -> dict[str, Any]:
    """One trial's stored attributes from its seeds' results: the first seed's description (spec, counts,
    arguments, baseline), the means of PSNR/SSIM/validation PSNR over the seeds, the per-seed values (per-image
    rows and validity included), the trial's validity, summed times, every checkpoint, and the validation curve
    of the first seed."""
    attrs = {k: v for k, v in results[0].items() if k not in ("_per_image", "_validity")}
    n = len(results)
    attrs["seeds"] = [r["seed"] for r in results]
    if all("_validity" in r for r in results):
        attrs["per_image_per_seed"] = [r["_per_image"] for r in results]
        attrs["validity_per_seed"] = [r["_validity"] for r in results]
        attrs["validity"] = combine(attrs["validity_per_seed"])
    for key in ("psnr", "ssim", "val_psnr", "val_gain_last_third"):
        vals = [r.get(key) for r in results]
        attrs[f"{key}_per_seed"] = vals
        attrs[key] = sum(vals) / n if all(isinstance(v, (int, float)) for v in vals) else None
    for key in ("wall_time_s", "train_time_s", "eval_time_s", "overhead_s"):
        attrs[key] = sum(float(r.get(key) or 0.0) for r in results)
    attrs["checkpoints"] = [r["checkpoint"] for r in results]
    attrs["val_curve"] = curve
    return attrs


def find_finished(ostudy, spec_hash: str, *, exclude: int, wait_s: float = 2.0):
    """The first finished trial that trained ``spec_hash`` (not itself a duplicate), waiting while another worker
    still trains it; None when no trial has that architecture. Interrupted trials do not count."""
    while True:
        same = [t for t in ostudy.get_trials(deepcopy=False)
                if t.number != exclude and t.user_attrs.get("spec_hash") == spec_hash
                and t.user_attrs.get("duplicate_of") is None and not is_retryable(t)]
        done = [t for t in same if t.state.name in ("COMPLETE", "PRUNED", "FAIL")]
        if done:
            return min(done, key=lambda t: t.number)
        if not any(t.state.name == "RUNNING" and t.number < exclude for t in same):
            return None
        time.sleep(wait_s)


def rung_decider(study: Study, ostudy, recs: list[Recorder], seeds: list[int], keys: list[Any]):
    """The lockstep's decisions at a rung (:mod:`.pruning`). Unit i is seed ``seeds[i]`` of design ``keys[i]`` (a
    sweep's design point label, one trial per seed: ``recs[i]``; a search trial's number, its seeds sharing the
    one trial). Records each trial's per-seed validation PSNR at the rung (:data:`RUNG_ATTR`, what designs are
    compared with, here and in later runs), then applies :func:`rung_decision` to each design of the lockstep
    against every design of the ledger that reported at that rung (a design's seeds from earlier trials -- a
    sequential study's first stage -- pooled in); returns the stopped units and records the decision on their
    trials (:data:`PRUNED_BY_ATTR`)."""
    cfg = study.config.pruning
    # other objectives: exact counts known before training (latency is measured after it: not a rung criterion)
    objectives = [o for o in (study.config.search.objectives[1:] if study.config.search is not None else ())
                  if o != "latency"]
    sweep = study.config.sweep is not None
    stored: dict[int, dict[str, dict[str, float]]] = {}  # trial number -> {step: {seed: psnr}}
    by_number = {r.number: r for r in recs}

    def key_of(t) -> Any:
        return t.user_attrs.get("label") if sweep else t.number

    def group(attrs: dict[str, Any]) -> tuple:
        args = attrs.get("arguments") or {}
        return tuple(attrs.get("design") if g == "design" else args.get(g) for g in cfg.group_by)

    def costs(attrs: dict[str, Any]) -> tuple:
        return tuple(float(attrs.get(OBJECTIVE_ATTRS[o], math.inf)) for o in objectives)

    def decide(step: int, values: dict[int, float]) -> dict[int, Any]:
        for i, v in values.items():
            stored.setdefault(recs[i].number, {}).setdefault(str(step), {})[str(seeds[i])] = v
        for number in {recs[i].number for i in values}:
            by_number[number].set_attr(RUNG_ATTR, {k: dict(v) for k, v in stored[number].items()})
        entries = rung_entries(ostudy.get_trials(deepcopy=False), step, key_of, lambda t: group(t.user_attrs),
                               lambda t: costs(t.user_attrs))
        stopped: dict[int, Any] = {}
        for entry in entries:
            units = [i for i in values if keys[i] == entry.key]
            if not units:
                continue
            decision = rung_decision(entry, entries, step, alpha=cfg.alpha, tolerance=cfg.tolerance)
            if decision.stop:
                for i in units:
                    stopped[i] = decision
                for number in {recs[i].number for i in units}:
                    by_number[number].set_attr(PRUNED_BY_ATTR, decision.to_dict())
        mine = {keys[i] for i in values}
        if len(mine) > 1 or stopped:  # a line per rung of a lockstep over designs (a search trial: only its stops)
            stops = {keys[i]: d for i, d in stopped.items()}
            print(f"rung {step}: {len(mine) - len(stops)} of {len(mine)} design(s) go on"
                  + ("; stopped " + "; ".join(f"{k} ({d.diff:+.3f} dB vs {d.leader})" for k, d in stops.items())
                     if stops else ""), flush=True)
        return stopped

    return decide


def run_trial(study: Study, ostudy, rec: Recorder, design: str, arguments: dict[str, Any], seeds: list[int], *,
              label: str | None = None, dedupe: bool = False, progress: bool = False, on_report=None) -> Outcome:
    """Run one trial -- every seed -- and return how it ended; the only place trials are trained.

    Records the worker's identity and the spec's attributes first (a trial that later fails or is pruned still
    says what it was). With ``dedupe`` (searches), an architecture already trained by a finished trial is not
    trained again: the outcome repeats that trial's, with ``duplicate_of`` set. Ctrl-C and kills propagate after
    the trial is marked interrupted, so the caller re-queues it.

    With ``pruning`` (:mod:`.pruning`): a search trial trains its seeds in lockstep and stops them together at a
    rung; a sweep's seed trial gets ``on_report(step, psnr)`` from the queue, which runs the design point's seed
    trials in lockstep (:func:`archsearch.study.queue.claim_and_run`).
    """
    for k, v in worker_identity().items():
        rec.set_attr(k, v)
    if label is not None:
        rec.set_attr("label", label)
    multi = study.config.search is not None and len(study.config.search.objectives) > 1
    last_step = study.train.steps
    curves: list[list[list[float]]] = [[] for _ in seeds]  # every seed's validation curve
    curve = curves[0]  # the first seed's: the trial's `val_curve`
    spec_attrs: dict[str, Any] = {}

    def on_spec(attrs: dict[str, Any]) -> None:
        check_attrs(attrs)
        spec_attrs.update(attrs)
        for k, v in attrs.items():
            if k != "seed":
                rec.set_attr(k, v)
        if dedupe:
            prev = find_finished(ostudy, attrs["spec_hash"], exclude=rec.number)
            if prev is not None:
                raise _Duplicate(prev)

    def run_seed(i: int, seed_report=None) -> dict[str, Any]:
        def reported(step: int, val_psnr: float) -> None:
            if val_psnr is None or not math.isfinite(val_psnr):
                return
            curves[i].append([int(step), float(val_psnr)])
            # Optuna keeps intermediate values for single-objective studies only; the first seed's are its
            if i == 0 and not multi:
                rec.report(int(step), float(val_psnr))
                # a trial that has trained every step is finished, never pruned (its test PSNR is the result)
                if step < last_step and rec.should_prune():
                    raise TrialPruned(f"pruned at step {step} (validation PSNR {val_psnr:.3f} dB)")
            if seed_report is not None:  # the lockstep's hand-over (pruning)
                seed_report(step, val_psnr)

        name = f"trial_{rec.number}" if len(seeds) == 1 else f"trial_{rec.number}_seed{seeds[i]}"
        return execute(study, design, arguments, seeds[i], report=reported, checkpoint_name=name,
                       progress=progress, on_spec=on_spec if i == 0 else None, trial=rec.number, label=label,
                       run_name=name)

    try:
        results = []
        published = study.space.design(design).published
        if study.config.pruning is not None and study.config.search is not None and not published:
            results, stopped = run_lockstep(len(seeds), study.config.pruning.rungs, rung_decider(
                study, ostudy, [rec] * len(seeds), seeds, [rec.number] * len(seeds)), run_seed)
            if stopped:
                raise Pruned(next(iter(stopped.values())))
        else:
            for i, seed in enumerate(seeds):
                if published and results:  # the same weights and test noise score the same: evaluated once
                    results.append({**results[0], "seed": seed})
                    continue
                results.append(run_seed(i, on_report if i == 0 else None))
        spec = results[0].pop("_spec")
        for r in results[1:]:
            r.pop("_spec", None)
        attrs = aggregate(results, curve)
        if len(seeds) > 1:
            attrs["val_curve_per_seed"] = curves
        if study.config.latency.enabled:
            attrs.update(trial_latency(study, spec))
        return Outcome("COMPLETE", attrs, objective_values(study, attrs))
    except _Duplicate as dup:
        prev = dup.trial
        keep = {k: v for k, v in prev.user_attrs.items() if k in TRIAL_ATTRS and k not in ("host", "pid", "label")}
        attrs = {**keep, "duplicate_of": prev.number}
        values = list(prev.values) if prev.state.name == "COMPLETE" else None
        return Outcome(prev.state.name, attrs, values)
    except TrialPruned as err:
        return Outcome("PRUNED", {"fail_reason": str(err), "val_curve": curve})
    except Pruned as err:  # the paired-seed rule stopped every seed at a rung (pruned_by holds the decision)
        d = err.decision
        return Outcome("PRUNED", {"fail_reason": f"pruned at step {d.step}: {d.reason}", "val_curve": curve,
                                  "val_curve_per_seed": curves, "pruned_at_step": d.step})
    except TrialFailed as err:
        return Outcome("FAIL", {"fail_reason": err.reason, "val_curve": curve})
    except (KeyboardInterrupt, SystemExit):
        rec.set_attr("fail_reason", INTERRUPTED)
        raise
    except Exception as err:  # one trial's bug never ends the study
        if is_infrastructure(err):  # the machine failed, not the model: re-queued on resume
            return Outcome("FAIL", {"fail_reason": infrastructure_reason(err), "val_curve": curve})
        return Outcome("FAIL", {"fail_reason": failure_log(study, rec.number, err)})


class _Duplicate(Exception):
    def __init__(self, trial):
        super().__init__(f"same architecture as trial {trial.number}")
        self.trial = trial


def trial_latency(study: Study, spec: GraphSpec) -> dict[str, Any]:
    """Latency of the trial's architecture measured where it was trained (fresh weights: the architecture, not
    the trained values, sets the time), stored per trial so Optuna's tools can sort and plot it."""
    lat = study.config.latency
    res = measure_latency(spec, device=str(study.train.device), size=tuple(lat.size), warmup=lat.warmup,
                          repeats=lat.repeats)
    return {"latency_ms_per_mp": res["ms_per_mp"], "latency_device": res["device"],
            "latency_input": f"{lat.size[0]}x{lat.size[1]}"}


def failure_log(study: Study, trial_number: int, err: BaseException) -> str:
    """Write the traceback of an unexpected error next to the ledger; return the one-line reason (without the
    log's path where the log cannot be written)."""
    path = Path(study.output_dir) / "logs" / f"trial_{trial_number}.txt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, "".join(traceback.format_exception(type(err), err, err.__traceback__)))
    except OSError as log_err:
        if is_infrastructure(log_err):  # the disk is full: the run stops and the trial runs again on resume
            raise
        return f"error: {type(err).__name__}: {err} (no traceback file: {log_err.strerror or log_err})"
    return f"error: {type(err).__name__}: {err} (traceback: {path})"


def worker_identity() -> dict[str, Any]:
    return {"host": this_host(), "pid": os.getpid()}
