"""The outputs step of a run: the ledger read once, then ``results.csv``, ``summary.csv``, the claim verdicts
(``claims.csv``, ``claims.json``) and the study's main curve as a PNG written from it.

Called by ``archsearch run`` and :func:`archsearch.run_study` at the end of a run (the study layer hands it the
ledger and knows nothing of reports); ``archsearch report`` writes the full page from the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from ..study.config import Study
from ..study.results import RESULT_COLUMNS, ledger_frame, summary_frame
from .figures import fig_activation_share, fig_vs_size, to_png
from .page import published_by_label
from .tables import design_points
from .verdicts import study_verdicts, write_verdicts


@dataclass(frozen=True)
class RunOutputs:
    """What the outputs step wrote and the numbers behind it: the files by role, the ledger frame (``results``),
    the design-point summary (``summary``) and the claim verdicts -- computed once, printed by the CLI from here."""

    paths: dict[str, Path]
    results: Any
    summary: Any
    verdicts: list = field(default_factory=list)


def write_outputs(study: Study, ostudy) -> RunOutputs:
    """Write the run's outputs into the study folder from its ledger (``ostudy``)."""
    out = Path(study.output_dir)
    df = ledger_frame(study, ostudy)
    summary = summary_frame(df)
    paths = {"results": out / "results.csv", "summary": out / "summary.csv"}
    with atomic_path(paths["results"]) as tmp:  # whole or not at all: a kill keeps the previous table
        df[RESULT_COLUMNS].to_csv(tmp, index=False)
    with atomic_path(paths["summary"]) as tmp:
        summary.to_csv(tmp, index=False)
    points = design_points(df)
    verdicts = study_verdicts(study, ostudy, df)
    if verdicts:
        paths["claims_csv"], paths["claims_json"] = write_verdicts(verdicts, out)
    # the plain plot is drawn by the report's figure functions, so it shows what the report shows
    fig = fig_activation_share(points, study.config.fidelity, verdicts, published_by_label(study, points)) \
        if study.config.sweep is not None else None
    fig = fig or fig_vs_size(points, "n_params", study.config.fidelity)
    if fig is not None:
        paths["plot"] = to_png(fig, out / f"{fig.key}.png")
    return RunOutputs(paths, df, summary, verdicts)
