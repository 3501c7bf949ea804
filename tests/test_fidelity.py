"""Ranking fidelity (archsearch.report.fidelity): Spearman's rho between each step's validation PSNR and the final
test PSNR across design points, per seed and pooled, the step from which the ranking is reliable, and the
report's figure and line -- on synthetic ledgers whose answers are known."""

from __future__ import annotations

import html
import math

import pytest

from archsearch.report.fidelity import RELIABLE_RHO, fidelity_ranks, rho_interval
from archsearch.study import load_study
from archsearch.study.results import ledger_frame
from archsearch.testing.ledger import add_trial as add
from archsearch.testing.ledger import new_ledger
from archsearch.testing.studies import write_synthetic_study

TESTS = {"a": 28.0, "b": 28.5, "c": 29.0, "d": 29.5, "e": 30.0}  # the final test PSNR of 5 design points


def _ledger(tmp_path, early: dict[str, float], seeds=(0, 1)):
    """5 design points x ``seeds``: validation at step 100 in the order ``early`` gives, at steps 200 and 300 in
    the test order (so the ranking is right from step 200 on)."""
    study = load_study(write_synthetic_study(tmp_path))
    ostudy = new_ledger(study)
    for seed in seeds:
        for lab, test in TESTS.items():
            curve = [[100, early[lab] + 0.01 * seed], [200, test - 2 + 0.01 * seed], [300, test - 1]]
            add(ostudy, design="convnet", label=lab, psnr=test + 0.05 * seed, seed=seed, val_curve=curve)
    return study, ostudy


def test_ranking_reliable_from_the_first_step_that_stays_right(tmp_path):
    reversed_early = dict(zip(TESTS, reversed(list(TESTS.values()))))
    study, ostudy = _ledger(tmp_path, reversed_early)
    fid = fidelity_ranks(ledger_frame(study, ostudy))
    assert [r.step for r in fid.steps] == [100, 200, 300] and fid.last_step == 300
    first, second = fid.steps[0], fid.steps[1]
    assert first.rho == pytest.approx(-1.0) and first.tau == pytest.approx(-1.0) and first.n == 5
    assert second.rho == pytest.approx(1.0) and second.per_seed == {0: pytest.approx(1.0), 1: pytest.approx(1.0)}
    assert fid.reliable_from == 200
    assert "reliable from step 200 (67% of the run" in fid.text()
    # the rungs that follow: the reliable validation steps before the last (a rung at the last step stops nothing)
    assert fid.rungs() == (200,) and "`pruning: {rungs: [200]}`" in fid.text()


def test_the_figure_wraps_its_long_line_instead_of_cutting_it(tmp_path):
    """The fidelity line (with its rungs) is longer than a figure is wide: the interactive figure's title carries
    all of it, in lines no longer than 170 characters."""
    pytest.importorskip("plotly")
    from archsearch.report.figures import fig_fidelity, to_plotly

    study, ostudy = _ledger(tmp_path, dict(zip(TESTS, reversed(list(TESTS.values())))))
    fid = fidelity_ranks(ledger_frame(study, ostudy))
    assert len(fid.text()) > 300
    title = to_plotly(fig_fidelity(fid)).layout.title.text
    lines = [html.unescape(part.removesuffix("</sup>")) for part in title.split("<br><sup>")[1:]]
    assert len(lines) >= 2 and max(map(len, lines)) <= 170
    assert " ".join(lines) == " ".join(fid.text().split())


def test_a_ranking_that_breaks_late_is_never_reliable(tmp_path):
    study = load_study(write_synthetic_study(tmp_path))
    ostudy = new_ledger(study)
    for seed in (0, 1):
        for i, (lab, test) in enumerate(TESTS.items()):
            late = 30.0 - 0.5 * i  # the last validation ranks them backwards
            add(ostudy, design="convnet", label=lab, psnr=test, seed=seed,
                val_curve=[[100, test - 2], [200, late]])
    fid = fidelity_ranks(ledger_frame(study, ostudy))
    assert fid.steps[0].rho == pytest.approx(1.0) and fid.steps[1].rho == pytest.approx(-1.0)
    assert fid.reliable_from is None and "no rung of a pruner is safe" in fid.text()
    assert fid.rungs() == () and "pruning:" not in fid.text()


def test_degenerate_seeds_and_too_few_points_are_left_out(tmp_path):
    study = load_study(write_synthetic_study(tmp_path))
    ostudy = new_ledger(study)
    for lab, test in list(TESTS.items())[:3]:
        add(ostudy, design="convnet", label=lab, psnr=test, seed=0, val_curve=[[1, test], [2, test]])
    add(ostudy, design="convnet", label="z", psnr=20.0, seed=0, val_curve=[[1, 40.0], [2, 40.0]],
        validity="degenerate", validity_per_seed=["degenerate"])
    fid = fidelity_ranks(ledger_frame(study, ostudy))
    assert fid.steps[0].n == 3 and fid.steps[0].rho == pytest.approx(1.0)  # "z" would break the order
    assert math.isnan(fid.steps[0].low)  # 3 points: no interval (Fisher z needs n >= 4)
    (tmp_path / "two").mkdir()
    study2 = load_study(write_synthetic_study(tmp_path / "two"))
    ostudy2 = new_ledger(study2)
    for lab in ("a", "b"):
        add(ostudy2, design="convnet", label=lab, psnr=TESTS[lab], seed=0, val_curve=[[1, 1.0], [2, 2.0]])
    assert fidelity_ranks(ledger_frame(study2, ostudy2)) is None  # 2 design points rank nothing


def test_rho_interval_by_fisher_z():
    low, high = rho_interval(0.9, 6)
    # z = atanh(0.9) = 1.4722, SE = 1.06 / sqrt(3) = 0.6120: tanh(1.4722 -/+ 1.96 * 0.6120)
    assert (low, high) == (pytest.approx(0.2662, abs=1e-3), pytest.approx(0.9905, abs=1e-3))
    assert all(math.isnan(v) for v in rho_interval(0.9, 3))
    assert RELIABLE_RHO == 0.9


def test_report_draws_it_and_prints_the_line(tmp_path, capsys):
    from archsearch.cli import main

    study, _ = _ledger(tmp_path, dict(zip(TESTS, reversed(list(TESTS.values())))))
    assert main(["report", str(study.path), "--no-png"]) == 0
    out = capsys.readouterr().out
    assert "ranking fidelity: reliable from step 200" in out
    page = (study.output_dir / "report.html").read_text()
    assert "Ranking fidelity" in page and "pooled rho" in page and "Kendall tau" in page
