"""How a run uses the machine: the worker x thread layout (``executor.workers: auto`` or a number) and the
machine's description recorded with each run. Read by the runner and by ``run --plan``."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from ..errors import ArchsearchError
from ..latency import cpu_model
from .config import Study

#: Environment variable that replaces ``auto`` workers by a number (as OMP_NUM_THREADS does for threads); the
#: test suite sets it to 1 so that tests run trials in-process unless they test the layout itself.
WORKERS_ENV = "ARCHSEARCH_WORKERS"


@dataclass(frozen=True)
class WorkerLayout:
    """How a run uses the machine: ``workers`` processes (local) or concurrent trials (Ray), ``threads`` torch
    threads each, and why (recorded in the ledger's ``runs``)."""

    workers: int
    threads: int
    reason: str


def machine_cpus() -> int:
    """The cores this process may use (the affinity mask where the OS has one, e.g. under a container limit)."""
    with contextlib.suppress(AttributeError, OSError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def machine_name() -> str:
    """e.g. ``AMD EPYC 9R14, 2 cores`` (the CPU model from /proc/cpuinfo where there is one)."""
    return f"{cpu_model()}, {machine_cpus()} cores"


def requested_workers(study: Study, requested: int | str | None) -> tuple[int | str, str]:
    """The worker count a run asks for and where it comes from: ``--workers``, else the study's
    ``executor.workers``, else (when that is ``auto``) :data:`WORKERS_ENV`; ``("auto", source)`` or a validated
    integer >= 1. Checked before the run writes anything."""
    n, src = requested, "--workers"
    if n in (None, "auto"):
        n, src = study.config.executor.workers, "executor.workers"
    if n == "auto" and os.environ.get(WORKERS_ENV, "auto") != "auto":
        n, src = os.environ[WORKERS_ENV], WORKERS_ENV
    if n == "auto":
        return n, src
    try:
        value = int(n)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = 0
    if isinstance(n, bool) or value < 1:
        raise ArchsearchError(f"{src} must be auto or an integer >= 1, got {n!r}")
    return value, src


def choose_layout(study: Study, requested: int | str | None | tuple[int | str, str], remaining: int,
                  kind: str) -> WorkerLayout:
    """The worker x thread layout of a run. A number (``--workers`` or the study's ``executor.workers``) is used as
    given -- capped at the trials left to run, which an extra worker would only wait for -- the cores shared
    evenly. ``auto`` on a CPU with trials for more than one worker runs one single-thread worker per core: the
    studies' models are small (a few hundred thousand MACs per pixel), and independent trials use 2 cores better
    than 2 intra-op threads on one trial (``benchmarks/bench_study.py --compare-old`` times the main study both
    ways). A GPU run keeps one worker. ``requested``: what :func:`requested_workers` returned, or its input."""
    cpus = machine_cpus()
    n, src = requested if isinstance(requested, tuple) else requested_workers(study, requested)
    p = study.config.pruning
    if p is not None and p.lockstep == "study" and study.config.sweep is not None:
        # the whole grid trains rung by rung in one worker (archsearch.study.pruning): a second would find nothing
        unused = f" ({src} {n} not used: one worker claims the whole grid)" if n != "auto" and n != 1 else ""
        return WorkerLayout(1, cpus, f"one worker, {cpus} thread(s): pruning in lockstep over the whole grid{unused}")
    if n != "auto":
        if 0 < remaining < n:
            return WorkerLayout(remaining, max(1, cpus // remaining),
                                f"{src} {n}, capped at the {remaining} trial(s) left to run")
        return WorkerLayout(n, max(1, cpus // n), f"{src} {n}")
    if on_gpu(study):
        return WorkerLayout(1, cpus, "auto: one worker on the GPU")
    if kind == "ray":
        return WorkerLayout(cpus, 1, f"auto: {cpus} concurrent single-thread trials")
    if cpus < 2 or remaining < 2:
        return WorkerLayout(1, cpus, f"auto: one worker, {cpus} thread(s) ({remaining} trial(s) to run)")
    n = min(cpus, remaining)
    return WorkerLayout(n, max(1, cpus // n), f"auto: {n} single-thread workers on {cpus} cores")


def cuda_available() -> bool:
    return torch.cuda.is_available()


def on_gpu(study: Study) -> bool:
    """Whether the study's trials train on a GPU (``training.device`` cuda, or auto with a GPU present)."""
    device = study.train.device
    return device.startswith("cuda") or (device == "auto" and cuda_available())


def run_device(study: Study) -> str:
    """Where the study's trials train, as the run record says it: ``cpu`` or ``cuda:<device name>``."""
    if not on_gpu(study):
        return "cpu"

    return f"cuda:{torch.cuda.get_device_name(0)}"
