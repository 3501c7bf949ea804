"""Study reports: the ledger as a table, the papers' figures from it, and an offline HTML page.

Three layers, each reusable on its own (``analysis/`` scripts call the same functions as ``archsearch report``):

* :mod:`.data` -- numbers: design points (mean and std of PSNR over seeds), Pareto masks, NSR/MemNet tables,
  parameter importances (the trial frames themselves live in :mod:`archsearch.study.results`);
* :mod:`.figures` -- :class:`FigureData` built from those numbers, drawn by :func:`to_plotly` and :func:`to_png`
  (the PNG shows exactly the numbers of the interactive figure);
* :mod:`.page` -- :func:`write_report`: ``report.html`` plus a PNG per figure.
"""

from ..study.ledger import open_ledger
from ..study.results import export_frame, ledger_frame, write_table
from .figures import (
    AXES,
    PSNR_AXIS,
    TITLES,
    FigureData,
    Series,
    fig_activation_share,
    fig_grid,
    fig_importances,
    fig_pareto,
    fig_vs_size,
    to_plotly,
    to_png,
)
from .page import Report, build_figures, write_report
from .tables import (
    design_points,
    memnet_grid,
    nsr_table,
    param_importances,
    pareto_front,
    pareto_mask,
)

__all__ = [
    "AXES", "PSNR_AXIS", "TITLES", "FigureData", "Report", "Series", "build_figures",
    "design_points", "export_frame", "fig_activation_share", "fig_grid", "fig_importances", "fig_pareto",
    "fig_vs_size", "ledger_frame", "memnet_grid", "nsr_table", "open_ledger", "param_importances", "pareto_front",
    "pareto_mask", "to_plotly", "to_png", "write_report", "write_table",
]
