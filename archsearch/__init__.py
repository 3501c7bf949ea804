"""archsearch: architecture search and ablation for image-restoration networks at equal budget."""

from . import blocks  # noqa: F401  (registers the block library)
from .builder import build
from .counting import Counts, count, macs
from .errors import ArchsearchError, BudgetError, SpecError
from .families import get_family
from .spec import GraphSpec
from .zoo import zoo_names, zoo_spec


def load_study(source, profile=None, output_dir=None):
    """A validated study from a YAML file or a mapping (as the file would hold; a mapping's relative paths are
    read from the working directory). Nothing is written. See :func:`archsearch.study.load_study`."""
    from .study.loader import load_study as _load  # keeps `import archsearch` light

    return _load(source, profile, output_dir)


def run_study(study, **kwargs):
    """Run or resume a study to completion and write its outputs (results, summary, claim verdicts, the main
    curve) -- stage by stage for a study with ``sequential:``; returns a :class:`~archsearch.study.RunSummary`
    (``status``, ``exit_code``, counts, ``verdicts``, ``outputs``). Keyword arguments: ``executor``, ``workers``,
    ``fresh``, ``progress``."""
    # imported here: the study and report layers pull in optuna, pandas and matplotlib, which `import archsearch`
    # (specs, counting, building) does not need
    from .report.stages import run_in_stages  # keeps `import archsearch` light

    return run_in_stages(study, **kwargs)


def write_report(study, out_dir=None, *, png=True):
    """Write ``report.html`` (and PNG copies) for a study that has a ledger; returns the :class:`Report`."""
    from .report.page import write_report as _write  # keeps `import archsearch` light

    return _write(study, None, out_dir, png=png)


def export_trial(study, which="best", *, out=None, formats=("py",)):
    """Export a study's trial(s) -- ``best``, ``pareto`` or a trial number -- as standalone models."""
    from .study.winners import export_trials  # keeps `import archsearch` light

    return export_trials(study, str(which), out=out, formats=tuple(formats))

__version__ = "0.1.0"

__all__ = [
    "ArchsearchError", "BudgetError", "Counts", "GraphSpec", "SpecError", "build", "count", "export_trial",
    "get_family", "load_study", "macs", "run_study", "write_report", "zoo_names", "zoo_spec",
]
