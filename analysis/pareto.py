"""Pareto fronts of a study: test PSNR (higher is better) vs parameters, MACs per pixel and measured latency
(lower is better); the non-dominated design points are highlighted, labelled and listed. Latency needs
``archsearch latency STUDY`` first.

    python analysis/pareto.py studies/xunit_budget.yaml [--x params macs latency]
"""

from __future__ import annotations

import sys

from _common import load, no_data, parser, save

AXES = {"params": "n_params", "macs": "macs_per_pixel", "latency": "latency_ms_per_mp"}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--x", nargs="+", choices=sorted(AXES), default=["params", "macs", "latency"],
                   help="cost axes (default: all three)")
    args = p.parse_args(argv)
    study, ostudy, df, points, out = load(args)
    from archsearch.report import fig_pareto, pareto_front

    if points.empty:
        return no_data("no complete trials")
    note = str(ostudy.user_attrs.get("fidelity") or study.config.fidelity)
    for name in args.x:
        col = AXES[name]
        fig = fig_pareto(points, col, note=note)
        if fig is None:
            print(f"{name}: no values in the ledger" + (" (run `archsearch latency` first)" if name == "latency"
                                                          else ""), file=sys.stderr)
            continue
        save(fig, out, f"pareto_{name}")
        front = pareto_front(points, col)
        front = front[front["on_front"]].sort_values(col)
        print(f"non-dominated by {name}:")
        print(front[["label", col, "psnr_mean", "n_seeds"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
