"""xUnit Fig. 4: test PSNR (mean ± std over seeds) vs the share of parameters inside the activations, one line
per design, from a study ledger (e.g. ``studies/xunit_budget.yaml``).

    python analysis/fig4_activation_share.py studies/xunit_budget.yaml [--profile paper]
"""

from __future__ import annotations

import sys

from _common import load, no_data, parser, save


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    study, ostudy, df, points, out = load(args)
    from archsearch.report import fig_activation_share

    fig = fig_activation_share(points, note=str(ostudy.user_attrs.get("fidelity") or study.config.fidelity))
    if fig is None:
        return no_data("no complete trial with parameters in its activations")
    save(fig, out, "fig4_activation_share")
    cols = ["label", "n_seeds", "n_params", "activation_param_pct", "psnr_mean", "psnr_std"]
    print(points.sort_values("activation_param_pct")[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
