"""Studies: YAML study and search-space files, the Optuna ledger, local and Ray Tune execution.

One job a module: :mod:`.space` (search spaces), :mod:`.config` (the study's typed config and :class:`Study`),
:mod:`.sweep` (the sweep planner), :mod:`.loader` (profiles, cross-checks, output folder), :mod:`.images`,
:mod:`.trial` (one trial), :mod:`.queue` (claiming queued trials), :mod:`.runner` (a run), :mod:`.ledger` and
:mod:`.storage` (the Optuna ledger), :mod:`.results` (the ledger as tables), :mod:`.winners` (exporting trials),
:mod:`.remeasure` (latency after the fact), :mod:`.plan` (``run --plan``), :mod:`.layout` (workers x threads).
This package writes the ledger; reading it into reports is :mod:`archsearch.report`'s job.
"""

from .config import Study
from .loader import load_study
from .results import ledger_frame, results_frame, summary_frame
from .runner import RunSummary, run_study
from .space import load_search_space
from .winners import export_trials, select_trials

__all__ = ["RunSummary", "Study", "export_trials", "ledger_frame", "load_search_space", "load_study", "results_frame",
           "run_study", "select_trials", "summary_frame"]
