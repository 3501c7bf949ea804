"""Studies: YAML study and search-space files, the Optuna ledger, local and Ray Tune execution."""

from .export import export_trials, select_trials
from .results import ledger_frame, results_frame, summary_frame
from .runner import RunSummary, run_study
from .schema import Study, load_search_space, load_study

__all__ = ["RunSummary", "Study", "export_trials", "ledger_frame", "load_search_space", "load_study", "results_frame",
           "run_study", "select_trials", "summary_frame"]
