"""Studies: YAML study and search-space files, the Optuna ledger, local and Ray Tune execution."""

from .runner import results_frame, run_study
from .schema import Study, load_search_space, load_study

__all__ = ["Study", "load_search_space", "load_study", "results_frame", "run_study"]
