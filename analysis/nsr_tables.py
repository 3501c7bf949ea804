"""NSR Tables 2-3 and MemNet Table 6 from a study ledger: mean test PSNR over seeds with rows = sparsity groups
k and columns = residual blocks (NSR), or rows = memory blocks M and columns = recursions R (MemNet). Prints the
table (Markdown), writes it as CSV and as a heatmap (PNG + HTML).

    python analysis/nsr_tables.py STUDY_FILE [--profile NAME]
"""

from __future__ import annotations

import sys

from _common import load, no_data, parser, save


def markdown(table) -> str:
    head = f"| {table.index.name} / {table.columns.name} | " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|---|" + "---:|" * len(table.columns)
    rows = [f"| {i} | " + " | ".join("" if v != v else f"{v:.2f}" for v in row) + " |"
            for i, row in zip(table.index, table.to_numpy().tolist())]
    return "\n".join([head, rule, *rows])


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    study, ostudy, df, points, out = load(args)
    from archsearch.report import TITLES, fig_grid, memnet_grid, nsr_table

    note = str(ostudy.user_attrs.get("fidelity") or study.config.fidelity)
    found = False
    for table, key, rows, cols in ((nsr_table(df), "nsr", "sparsity groups k", "residual blocks"),
                                   (memnet_grid(df), "memnet", "memory blocks M", "recursions R")):
        if table is None:
            continue
        found = True
        print(f"{TITLES[key]} -- {note}\n{markdown(table)}\n")
        table.to_csv(out / f"{key}_table.csv")
        print(f"wrote {out / f'{key}_table.csv'}")
        save(fig_grid(table, f"{key}_table", TITLES[key], rows, cols, note), out, f"{key}_table")
    if not found:
        return no_data("no complete trial has (sparsity_groups, n_blocks) or (n_blocks, recursions) arguments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
