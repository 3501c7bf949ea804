"""Reports: synthetic Optuna ledgers (no training) -> frames, Pareto fronts, NSR/MemNet tables, importances,
the HTML page with its PNG copies, exports and the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from archsearch.cli import main
from archsearch.report import (
    TITLES,
    design_points,
    fig_activation_share,
    fig_vs_size,
    ledger_frame,
    memnet_grid,
    nsr_table,
    param_importances,
    pareto_mask,
    to_png,
    write_report,
    write_table,
)
from archsearch.study import load_study
from archsearch.testing.ledger import add_trial as add
from archsearch.testing.ledger import new_ledger
from archsearch.testing.studies import SYNTHETIC_FIDELITY as FIDELITY
from archsearch.testing.studies import write_synthetic_study as write_study_file

ROOT = Path(__file__).resolve().parents[1]

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def sweep_ledger(tmp_path):
    """An xUnit Fig. 4 sweep: ConvNet + xNet r = 1, 5, 9, two seeds each, a failure, a pruned and a running
    trial, an infeasible grid point."""
    study = load_study(write_study_file(tmp_path))
    ostudy = new_ledger(study)
    ostudy.set_user_attr("infeasible", [{"design": "xnet", "sweep_value": 13, "label": "xnet xunit_kernel_size=13",
                                         "reason": "no width puts it within 10% of 3,000 params"}])
    for seed in (0, 1):
        add(ostudy, design="convnet", psnr=27.0 + 0.1 * seed, seed=seed, n_params=2950, macs=2900, pct=0.0)
        for r, base, pct, n in ((1, 27.4, 6.0, 3000), (5, 27.9, 30.4, 2860), (9, 28.1, 52.0, 2990)):
            add(ostudy, design="xnet", psnr=base + 0.2 * seed, seed=seed, n_params=n, macs=2000 + 10 * r, pct=pct,
                arguments={"xunit_kernel_size": r, "width": 8}, label=f"xnet xunit_kernel_size={r}",
                sweep_value=r)
    add(ostudy, design="xnet", state=TrialState.FAIL, reason="diverged: loss is nan at step 3",
        label="xnet xunit_kernel_size=9", seed=2)
    add(ostudy, design="xnet", state=TrialState.PRUNED, reason="pruned at step 2 (validation PSNR 12.000 dB)",
        label="xnet xunit_kernel_size=5", seed=3)
    add(ostudy, design="convnet", state=TrialState.RUNNING, label="convnet", seed=4)
    return study, ostudy


def test_ledger_frame_and_design_points(sweep_ledger):
    study, ostudy = sweep_ledger
    df = ledger_frame(study, ostudy)
    assert sorted(df["state"].value_counts().items()) == [("COMPLETE", 8), ("FAIL", 1), ("INFEASIBLE", 1),
                                                          ("PRUNED", 1), ("RUNNING", 1)]
    points = design_points(df)
    assert len(points) == 4 and set(points["n_seeds"]) == {2}
    r9 = points[points["label"] == "xnet xunit_kernel_size=9"].iloc[0]
    assert r9["psnr_mean"] == pytest.approx(28.2)
    assert r9["psnr_std"] == pytest.approx(math.sqrt(0.02))
    assert r9["short"] == "r=9"


def test_figures_plot_the_means_and_spreads_over_seeds(sweep_ledger):
    """The plotted numbers, not only the titles: Fig. 4's xNet line is the mean (and sample std) over the two seeds
    of each activation share, the ConvNet its own point at 0%."""
    study, ostudy = sweep_ledger
    points = design_points(ledger_frame(study, ostudy))
    fig = fig_activation_share(points)
    lines = {s.name.split()[0]: s for s in fig.series}
    xnet = lines["xnet"]
    assert xnet.x == [6.0, 30.4, 52.0]
    assert xnet.y == pytest.approx([27.5, 28.0, 28.2])  # base + 0.2 * seed, seeds 0 and 1
    assert xnet.err == pytest.approx([0.1414214] * 3, rel=1e-5)  # sample std of (base, base + 0.2)
    assert lines["convnet"].x == [0.0] and lines["convnet"].y == pytest.approx([27.05])
    size = fig_vs_size(points, "n_params")
    xs = sorted(x for s in size.series for x in s.x)
    assert xs == [2860.0, 2950.0, 2990.0, 3000.0]


def test_pareto_mask_exact_on_hand_made_example():
    #            A     B     C     D     E (dup of D)  F (NaN)  G
    cost = [1.0, 2.0, 2.0, 3.0, 3.0, float("nan"), 5.0]
    quality = [20.0, 21.0, 20.5, 22.0, 22.0, 30.0, 21.5]
    # A: cheapest. B beats C (same cost, higher quality). D and E tie: both kept. G dominated by D.
    assert pareto_mask(cost, quality) == [True, True, False, True, True, False, False]
    assert pareto_mask([], []) == []


def test_report_html_and_pngs(sweep_ledger, tmp_path):
    study, ostudy = sweep_ledger
    report = write_report(study, ostudy)
    page = report.html.read_text()
    assert report.html == Path(study.output_dir) / "report.html"
    for key in ("activation", "params", "macs", "pareto_params", "pareto_macs"):
        assert TITLES[key] in page, key
    assert TITLES["pareto_latency"] not in page.split("Not shown")[0]  # no latency measured: listed as not shown
    assert "archsearch latency" in page
    assert page.count("* plotly.js v") == 1 and "<script src=" not in page  # plotly.js embedded once: offline
    assert FIDELITY in page and "train default" in page and "4 steps" in page and "0, 1" in page
    assert "diverged: loss is nan at step 3" in page and "pruned at step 2" in page
    assert "no width puts it within 10%" in page and "RUNNING" in page
    assert "Parameter importances" not in page.split("Not shown")[0]
    assert "parameter importances: not a search" in page
    assert len(report.pngs) == len(report.figures) == 5
    for png in report.pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 15_000, png


def test_empty_study_says_so(tmp_path, capsys):
    path = write_study_file(tmp_path)
    study = load_study(path)
    ostudy = new_ledger(study)
    add(ostudy, design="convnet", state=TrialState.RUNNING, label="convnet")
    assert main(["report", str(path)]) == 0
    captured = capsys.readouterr()
    assert "no complete trials yet" in captured.err
    page = (Path(study.output_dir) / "report.html").read_text()
    assert "No complete trials yet" in page and "<div id=" not in page  # no empty axes
    assert not (Path(study.output_dir) / "report_png").exists()
    del ostudy


def _grid_ledger(tmp_path, rows):
    study = load_study(write_study_file(tmp_path))
    ostudy = new_ledger(study)
    for design, args, psnr, seed in rows:
        add(ostudy, design=design, psnr=psnr, seed=seed, arguments=args,
            label=design + "".join(f" {k}={v}" for k, v in args.items()))
    return study, ostudy


def test_nsr_table_pivot(tmp_path):
    rows = []
    for nb, base in ((2, 33.9), (4, 34.3)):
        rows += [("resnet", {"n_blocks": nb, "channels": 8}, base, s) for s in (0, 1)]  # dense baseline: N/A
        for k, delta in ((2, 0.01), (4, -0.1)):
            rows += [("nsr_resnet", {"n_blocks": nb, "sparsity_groups": k}, base + delta + 0.02 * s, s)
                     for s in (0, 1)]
    study, ostudy = _grid_ledger(tmp_path, rows)
    table = nsr_table(ledger_frame(study, ostudy))
    assert list(table.index) == ["N/A", "2", "4"] and list(table.columns) == [2, 4]
    assert table.loc["N/A", 2] == pytest.approx(33.9)
    assert table.loc["2", 4] == pytest.approx(34.3 + 0.01 + 0.01)
    assert table.loc["4", 2] == pytest.approx(33.9 - 0.1 + 0.01)
    assert memnet_grid(ledger_frame(study, ostudy)) is None
    report = write_report(study, ostudy, png=False)
    assert TITLES["nsr"] in report.html.read_text()
    fig = next(f for f in report.figures if f.key == "nsr_table")
    assert fig.y_labels == ["N/A", "2", "4"] and fig.x_labels == ["2", "4"]
    assert to_png(fig, tmp_path / "nsr.png").stat().st_size > 10_000


def test_memnet_grid_pivot(tmp_path):
    rows = [("memnet", {"n_blocks": m, "recursions": r, "channels": 8}, 30 + m / 10 + r / 100 + 0.01 * s, s)
            for m, r in ((4, 6), (6, 6), (6, 8)) for s in (0, 1)]
    study, ostudy = _grid_ledger(tmp_path, rows)
    df = ledger_frame(study, ostudy)
    grid = memnet_grid(df)
    assert list(grid.index) == [4, 6] and list(grid.columns) == [6, 8]
    assert grid.loc[6, 8] == pytest.approx(30.6 + 0.08 + 0.005)
    assert math.isnan(grid.loc[4, 8])
    assert nsr_table(df) is None
    report = write_report(study, ostudy, png=False)
    assert TITLES["memnet"] in report.html.read_text() and report.pngs == []


def test_importances_on_a_search_ledger(tmp_path):
    study = load_study(write_study_file(tmp_path, "search", search=True))
    ostudy = new_ledger(study)
    for i, r in enumerate((1, 3, 5, 7, 9, 1, 5, 9)):
        add(ostudy, design="xnet", psnr=27 + r / 10 + (i % 2) * 0.01, params={"xunit_kernel_size": r},
            arguments={"xunit_kernel_size": r}, label=None, n_params=3000 - 10 * i)
    add(ostudy, design="xnet", state=TrialState.FAIL, reason="error: boom", params={"xunit_kernel_size": 3})
    imp, why = param_importances(study, ostudy)
    assert why == "" and set(imp) == {"xunit_kernel_size"} and imp["xunit_kernel_size"] == pytest.approx(1.0)
    report = write_report(study, ostudy, png=False)
    page = report.html.read_text()
    assert TITLES["importances"] in page
    fig = next(f for f in report.figures if f.key == "param_importances")
    assert to_png(fig, tmp_path / "imp.png").stat().st_size > 10_000
    # labels of search trials come from their params
    assert "xnet xunit_kernel_size=9" in set(report.frame["label"])


def test_csv_round_trip_and_parquet(sweep_ledger, tmp_path):
    study, ostudy = sweep_ledger
    df = ledger_frame(study, ostudy)
    path = write_table(df, tmp_path / "trials.csv")
    back = pd.read_csv(path)
    assert len(back) == len(df) and list(back.columns) == list(df.columns)
    done = back[back["state"] == "COMPLETE"].sort_values("number")
    ref = df[df["state"] == "COMPLETE"].sort_values("number")
    assert done["psnr"].tolist() == pytest.approx(ref["psnr"].tolist())
    assert done["label"].tolist() == ref["label"].tolist()
    pytest.importorskip("pyarrow")
    pq = pd.read_parquet(write_table(df, tmp_path / "trials.parquet"))
    assert len(pq) == len(df)


def test_report_cli_writes_exports_and_out_dir(sweep_ledger, tmp_path, capsys):
    study, _ = sweep_ledger
    out = tmp_path / "elsewhere"
    assert main(["report", str(study.path), "--out", str(out), "--csv", str(tmp_path / "t.csv"), "--no-png"]) == 0
    assert (out / "report.html").exists() and (tmp_path / "t.csv").exists()
    assert not (out / "report_png").exists()
    assert "wrote" in capsys.readouterr().out


def test_unknown_study_is_one_line_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "nope.yaml" in err


def test_study_without_ledger_is_one_line_exit_2(tmp_path, capsys):
    assert main(["report", str(write_study_file(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no ledger" in err


def test_parquet_without_pyarrow_says_how_to_install(sweep_ledger, tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError("no pyarrow")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    study, _ = sweep_ledger
    assert main(["report", str(study.path), "--parquet", str(tmp_path / "t.parquet"), "--no-png"]) == 2
    assert "pip install pyarrow" in capsys.readouterr().err


def test_analysis_scripts_use_the_report_functions(sweep_ledger, tmp_path, capsys):
    import importlib
    import sys

    study, _ = sweep_ledger
    sys.path.insert(0, str(ROOT / "analysis"))
    try:
        fig4 = importlib.import_module("fig4_activation_share")
        pareto = importlib.import_module("pareto")
        tables = importlib.import_module("nsr_tables")
        out = tmp_path / "analysis"
        assert fig4.main([str(study.path), "--out", str(out)]) == 0
        assert pareto.main([str(study.path), "--out", str(out), "--x", "params"]) == 0
        assert tables.main([str(study.path), "--out", str(out)]) == 0  # a sweep over r: no table, says so
        with pytest.raises(SystemExit) as info:
            pareto.main([str(tmp_path / "missing.yaml")])
        assert info.value.code == 2
    finally:
        sys.path.remove(str(ROOT / "analysis"))
    assert (out / "fig4_activation_share.png").stat().st_size > 10_000
    assert (out / "pareto_params.html").exists()
    captured = capsys.readouterr()
    assert "non-dominated by params" in captured.out and "nothing to draw" in captured.err


def test_pareto_colours_families_labels_the_front_and_draws_references(sweep_ledger, tmp_path):
    from archsearch.report import fig_pareto

    study, ostudy = sweep_ledger
    points = design_points(ledger_frame(study, ostudy))
    assert set(points["family"]) == {"convnet", "xnet"}  # from the search space's designs
    fig = fig_pareto(points, "n_params", references=[(27.3, "DnCNN-S (official)")])
    assert fig.hlines == [(27.3, "DnCNN-S (official)")]
    front = fig.series[-1]
    assert front.emphasis and all(a.split()[0].rstrip(":") in ("convnet", "xnet") for a in front.annotations)
    dominated = {s.name.split()[0] for s in fig.series[:-1]}
    assert dominated <= {"convnet", "xnet"} and dominated
    assert sum(len(s.x) for s in fig.series) == len(points)  # every design point drawn once
    png = to_png(fig, tmp_path / "p.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "DnCNN-S (official)" in __import__("archsearch.report", fromlist=["to_plotly"]).to_plotly(fig).to_html()
    # a reference that gives its size is a point on that axis's plot (a published checkpoint), a line elsewhere
    from archsearch.study.config import ReferenceLine

    ref = ReferenceLine("LIDIA-S (published)", 27.9, "authors' weights", n_params=40226)
    fig = fig_pareto(points, "n_params", references=[ref, (27.3, "DnCNN-S (official)")])
    assert fig.hlines == [(27.3, "DnCNN-S (official)")]
    pub = fig.series[-1]
    assert pub.published and (pub.x, pub.y, pub.annotations) == ([40226.0], [27.9], ["LIDIA-S (published)"])
    assert to_png(fig, tmp_path / "q.png").read_bytes()[:4] == b"\x89PNG"
    fig = fig_pareto(points, "macs_per_pixel", references=[ref])
    assert fig.hlines == [(27.9, "LIDIA-S (published)")] and not any(s.published for s in fig.series)


def _one_trial_study(tmp_path):
    path = write_study_file(tmp_path)
    ostudy = new_ledger(load_study(path))
    add(ostudy, design="convnet", psnr=27.0, seed=0, n_params=2950, macs=2900, pct=0.0)
    return path


@pytest.mark.parametrize("flag, kind", [("--csv", "folder"), ("--parquet", "folder"), ("--out", "file")])
def test_a_folder_for_a_file_or_a_file_for_a_folder_is_one_line(flag, kind, tmp_path, capsys):
    path = _one_trial_study(tmp_path)
    target = tmp_path / "target"
    target.mkdir() if kind == "folder" else target.write_text("x")
    assert main(["report", str(path), flag, str(target), "--no-png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and f"{flag} {target}" in err, err


def test_a_huge_latency_size_is_refused_before_measuring(tmp_path, capsys, monkeypatch):
    import archsearch.cli.report as cli_report

    def no_measuring(*a, **kw):
        raise AssertionError("measured")

    monkeypatch.setattr(cli_report, "measure_study", no_measuring)
    path = _one_trial_study(tmp_path)
    assert main(["latency", str(path), "--latency-size", "100000x100000", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--latency-size" in err and "at most 8192" in err, err
