"""A study's paper claims and published rows, as data (``claims:`` and ``published:`` in a study file), validated
at load, and decided from per-seed PSNR.

::

    published:                    # the published number shown beside a measured point: point -> row id
      "convnet": xunit_fig4_convnet_share
    claims:
      - id: fig4_zero_worst       # a safe name, unique within the study
        source: "xUnit (CVPR 2018) Fig. 4"
        text: "0% (plain ConvNet) is clearly worst"
        kind: extreme             # a registered kind: ordering | gap | trend | plateau | extreme | contrast | failures
        point: "@0"
        is: worst
        published: [xunit_fig4_convnet_share]   # optional: the published rows behind the claim
        tested: partial           # optional: full (default) | partial -- how much of the sentence is tested
        untested: "..."           # with partial: the clause left untested
        evidence: "..."           # optional: the weakness of the paper's own evidence (e.g. single-run values)

Each kind is one class in :mod:`.kinds` (its fields, their parsing, its rule in words, its decision and that
decision rule in one line), registered in :data:`CLAIM_KINDS`:

* ``ordering``: ``order: [A, B, C]`` -- mean PSNR A > B > C (each adjacent pair);
* ``gap``: ``a: A``, ``b: B`` and exactly one of ``within: w`` (|A - B| <= w dB, equivalence), ``at_least: x``
  (A - B >= x dB), ``at_most: x`` (A - B <= x dB), ``not_worse_by: m`` (non-inferiority, "at least as good":
  A - B >= -m dB) or ``about: x`` with ``tolerance: t`` (|A - B - x| <= t dB, equivalence);
* ``trend``: ``points: [P1, P2, ...]`` in x order, ``direction: increasing | decreasing``, ``monotone: true``
  (default: no adjacent step may go the other way);
* ``plateau``: ``points: [P1, ...]``, ``tolerance: t`` -- every pair within t dB (equivalence);
* ``extreme``: ``point: A``, ``is: worst | best``, optional ``among: [...]`` (default: every point of the study);
* ``contrast``: ``gain: [A, B]``, ``versus: [C, D]``, ``at_most: f`` -- the gain A - B is at most f times C - D;
* ``failures``: ``point: A``, ``more_than: [B, ...]`` -- A diverges or is degenerate more often (Fisher exact).

A point (``A``, ``B``, ``P1``) is a label exactly as the ledger's ``label`` column writes it (the design name, then
`` key=value`` per swept argument: ``xnet xunit_kernel_size=9``; ``convnet`` for a baseline), or ``"@VALUE"`` --
the point whose ``sweep_value`` is VALUE (``"@15"`` in a sweep over ``activation_param_pct``, where the solver
picks the design at each percentage). YAML reads a bare ``@`` as reserved: quote it.

The package: :mod:`.points` (point references), :mod:`.published_map` (published rows, looked up once),
:mod:`.stats` (t intervals, paired differences, one-sided and equivalence tests, Holm, the seeds needed), :mod:`.claim` (the base class, the registry, loading),
:mod:`.kinds` (the kinds), :mod:`.verdicts` (:func:`evaluate_claims`: per-seed data in, verdicts out). It imports
nothing from :mod:`archsearch.study` or :mod:`archsearch.report`; the study schema loads claims with it and the
report decides them from the ledger (:mod:`archsearch.report.verdicts`).
"""

from . import kinds  # noqa: F401  (registers the claim kinds)
from .claim import CLAIM_KINDS, COMMON, Claim, Decision, Measured, load_claim, load_claims, register_kind
from .points import PointRef, check_points, parse_ref, parse_value, resolve, same_value
from .published_map import PublishedMap, check_published_id, load_published_map, published_row
from .stats import (
    ALPHA,
    LEVEL,
    METHOD,
    MIN_SEEDS,
    Comparison,
    PerSeed,
    holm,
    paired,
    pooled_paired_sd,
    t_interval,
    t_quantile,
)
from .verdicts import PAPER_NOTE, PROXY_NOTE, RULES, VERDICTS, PointStat, Verdict, evaluate_claims

__all__ = [
    "ALPHA", "CLAIM_KINDS", "COMMON", "LEVEL", "METHOD", "MIN_SEEDS", "PAPER_NOTE", "PROXY_NOTE", "RULES", "VERDICTS", "Claim",
    "Comparison", "Decision", "Measured", "PerSeed", "PointRef", "PointStat", "PublishedMap", "Verdict",
    "check_points", "check_published_id", "evaluate_claims", "holm", "pooled_paired_sd", "load_claim", "load_claims", "load_published_map",
    "paired", "parse_ref", "parse_value", "published_row", "register_kind", "resolve", "same_value", "t_interval",
    "t_quantile",
]
