"""The verdict rules a referee would ask for, each on synthetic per-seed data with a known answer that the rule
changes: the seed floor, the sd floor at the study's pooled paired sd, Holm within a claim and across a study,
equivalence (two one-sided tests) with its feasibility check, non-inferiority, monotonicity, the contrast and
failure-count kinds, the validity gates (degenerate and under-trained points), per-seed values beside every
interval, and the partly-tested tag."""

from __future__ import annotations

import math

import pytest

from archsearch.claims import (
    ALPHA,
    MIN_SEEDS,
    Comparison,
    Decision,
    evaluate_claims,
    holm,
    load_claim,
    load_claims,
)
from archsearch.claims.stats import above, comparison, fisher_greater, inside, pooled_paired_sd, t_quantile
from archsearch.errors import SpecError

HEAD = {"id": "c1", "source": "a paper", "text": "a claim"}


def _claim(kind, **fields):
    return load_claim({**HEAD, "kind": kind, **fields}, "claims[0]")


def _one(kind, data, values=None, **fields):
    return evaluate_claims([_claim(kind, **fields)], data, values or {}, scale="proxy")[0]


def _points(base, **offsets):
    """Per-seed PSNR: point -> seed -> base[seed] + offset (a number, or a per-seed list)."""
    out = {}
    for name, off in offsets.items():
        offs = off if isinstance(off, (list, tuple)) else [off] * len(base)
        out[name] = {s: b + o for s, (b, o) in enumerate(zip(base, offs))}
    return out


BASE = [28.0, 28.6, 27.7, 28.3, 28.1]  # what the seeds share (each seed moves every point alike)


# ---------------------------------------------------------------------------------------------------------
# the seed floor
# ---------------------------------------------------------------------------------------------------------
def test_two_seeds_decide_nothing_however_clear():
    """A 1 dB gap on 2 seeds whose differences agree to 0.001 dB: a t interval exists (1 degree of freedom) and
    lies far above 0, but fewer than MIN_SEEDS shared seeds decide nothing."""
    data = _points(BASE[:2], A=[1.0, 1.001], B=0.0)
    v = _one("ordering", data, order=["A", "B"])
    assert MIN_SEEDS == 3 and v.low > 0  # the old rule (interval above 0) would read "holds"
    assert v.verdict == "inconclusive" and "needs ≥ 3 seeds shared by A and B (has 2)" in v.reason, v.line()
    assert _one("ordering", _points(BASE[:3], A=[1.0, 1.001, 0.999], B=0.0), order=["A", "B"]).verdict == "holds"


# ---------------------------------------------------------------------------------------------------------
# the sd floor: the study's pooled paired sd
# ---------------------------------------------------------------------------------------------------------
def test_a_pair_whose_seeds_move_together_is_floored_at_the_pooled_sd():
    """nsr_selection's case: two points that start from the same weights and see the same batches differ by
    -0.03 dB on every seed (interval ~0.002 wide), while the study's other pairs spread ~0.2 dB. Alone the pair
    reads 'contradicted'; with its sd floored at the pooled paired sd it is inconclusive."""
    data = _points(BASE[:3], softmax=[0.0, 0.001, -0.001], sigmoid=[0.03, 0.03, 0.03], none=[-0.2, 0.25, 0.1],
                   other=[0.3, -0.15, 0.05])
    c = load_claims([{**HEAD, "kind": "ordering", "order": ["softmax", "sigmoid"]}])
    alone = evaluate_claims(c, {k: data[k] for k in ("softmax", "sigmoid")}, {})[0]
    assert alone.verdict == "contradicted" and alone.high - alone.low < 0.01, alone.line()
    v = evaluate_claims(c, data, {})[0]
    sd, df = pooled_paired_sd(data)
    assert sd > 0.1 and df == 6 * 2
    head = v.comparisons[0]
    assert head.sd == pytest.approx(sd) and head.floored and head.sd_own < 0.002
    assert v.verdict == "inconclusive" and v.high - v.low > 0.4, v.line()
    # the interval printed is the floored one: mean ± t(0.975, 2) * sd / sqrt(3)
    assert v.high - v.estimate == pytest.approx(t_quantile(0.975, 2) * sd / math.sqrt(3))


def test_pooled_paired_sd_pools_every_pair_by_degrees_of_freedom():
    data = {"a": {0: 1.0, 1: 2.0, 2: 3.0}, "b": {0: 1.0, 1: 2.0, 2: 3.0}, "c": {0: 1.0, 1: 3.0, 2: 3.0}}
    # a-b: 0 variance; a-c and b-c: differences (0, -1, 0), variance 1/3; each 2 degrees of freedom
    sd, df = pooled_paired_sd(data)
    assert df == 6 and sd == pytest.approx(math.sqrt((0 + 2 / 3 + 2 / 3) / 6))
    assert pooled_paired_sd({"a": {0: 1.0}, "b": {0: 2.0}}) == (0.0, 0)


# ---------------------------------------------------------------------------------------------------------
# Holm within a claim and across a study
# ---------------------------------------------------------------------------------------------------------
def _comp(name, p_holds, p_contra, n=5):
    return Comparison(name, 0.1, 0.0, 0.2, n, p_holds=p_holds, p_contra=p_contra)


def test_holm_within_a_composite_claim():
    """One of four comparisons against the claim at p = 0.01: below 2.5% alone, 0.04 after Holm (x4)."""
    one = Decision.of([_comp("A - B", 0.5, 0.01)])
    assert one.verdict == "contradicted" and one.p_value == pytest.approx(0.01)
    four = Decision.of([_comp("A - B", 0.5, 0.01), *[_comp(f"A - {x}", 0.001, 0.9) for x in "CDE"]])
    assert four.verdict == "inconclusive" and "does not decide" in four.reason
    # holds needs every comparison (intersection-union): no correction, the largest p
    holds = Decision.of([_comp("A - B", 0.02, 0.9), _comp("A - C", 0.001, 0.9)])
    assert holds.verdict == "holds" and holds.p_value == pytest.approx(0.02)
    assert Decision.of([_comp("A - B", 0.03, 0.9), _comp("A - C", 0.001, 0.9)]).verdict == "inconclusive"


def test_holm_step_down():
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_holm_across_the_study_claims():
    """Two claims each significant alone (p ~ 0.014, between 2.5%/2 and 2.5%): each holds alone; together Holm
    adjusts the smaller to ~0.029 and neither holds."""
    up = [1.0, 0.7, 1.3]  # mean 1, sd 0.3 over 3 seeds: t = 5.77, one-sided p ~ 0.014
    data = _points(BASE[:3], A=up, B=0.0, C=[u + 5 for u in up], D=5.0)
    raw = [{**HEAD, "id": "ab", "kind": "ordering", "order": ["A", "B"]},
           {**HEAD, "id": "cd", "kind": "ordering", "order": ["C", "D"]}]
    alone = evaluate_claims(load_claims(raw[:1]), data, {})[0]
    assert alone.verdict == "holds" and ALPHA / 2 < alone.p_value < ALPHA, alone.line()
    both = evaluate_claims(load_claims(raw), data, {})
    assert [v.verdict for v in both] == ["inconclusive", "inconclusive"]
    assert both[0].p_adjusted == pytest.approx(2 * both[0].p_value)
    assert "not after Holm's correction over the study's 2 tested claims" in both[0].reason, both[0].line()


# ---------------------------------------------------------------------------------------------------------
# equivalence (TOST) and its feasibility; non-inferiority
# ---------------------------------------------------------------------------------------------------------
def test_equivalence_that_cannot_hold_at_these_seeds_says_what_it_needs():
    """|A - B| <= 0.05 dB with a paired sd of 0.1 dB on 3 seeds: even an estimate of exactly 0 gives an interval
    ±0.25 dB wide, so the claim is untestable here; the page says how many seeds an 80%-power design needs."""
    data = _points(BASE[:3], A=[0.1, -0.1, 0.0], B=0.0)
    v = _one("gap", data, a="A", b="B", within=0.05)
    assert v.verdict == "inconclusive" and v.needs.startswith("untestable at this profile: needs ≥"), v.line()
    n = v.seeds_needed
    assert (t_quantile(1 - ALPHA, n - 1) + t_quantile(0.8, n - 1)) * 0.1 / math.sqrt(n) <= 0.05
    assert "untestable at this profile" in v.line()
    # 200 seeds would not do at 1 dB of paired sd: untestable at CPU scale
    wide = _points(BASE[:3], A=[1.0, -1.0, 0.0], B=0.0)
    assert _one("gap", wide, a="A", b="B", within=0.05).needs.startswith("untestable at CPU scale")


def test_equivalence_is_two_one_sided_tests():
    c = comparison("A - B", [0.01, 0.03, 0.02])  # mean 0.02, sd 0.01
    assert inside(c, -0.1, 0.1).outcome == "holds"
    half = t_quantile(0.975, 2) * 0.01 / math.sqrt(3)  # ~0.0248: the interval is [-0.005, 0.045]
    assert inside(c, -0.1, 0.04).outcome == "inconclusive"  # the upper one-sided test fails
    assert inside(c, -0.1, 0.02 + half + 1e-6).outcome == "holds"
    assert inside(c, 0.05, 0.5).outcome == "contradicted"  # entirely below the lower margin
    # `about: x, tolerance: t`: equivalence around x
    data = _points(BASE[:3], A=[0.11, 0.09, 0.10], B=0.0)
    assert _one("gap", data, a="A", b="B", about=0.1, tolerance=0.05).verdict == "holds"
    assert _one("gap", data, a="A", b="B", about=0.3, tolerance=0.05).verdict == "contradicted"


def test_non_inferiority_is_not_superiority():
    """'sparse- is at least as good as the baseline': a -0.02 dB difference with a 0.03 dB sd. As superiority
    (at_least: 0) it is inconclusive at best; as non-inferiority within 0.1 dB it holds."""
    data = _points(BASE[:4], minus=[-0.02, -0.05, 0.01, -0.02], baseline=0.0)
    assert _one("gap", data, a="minus", b="baseline", at_least=0).verdict != "holds"
    v = _one("gap", data, a="minus", b="baseline", not_worse_by=0.1)
    assert v.verdict == "holds" and v.rule == "minus - baseline >= -0.1 dB (non-inferiority)", v.line()
    worse = _points(BASE[:4], minus=[-0.5, -0.45, -0.55, -0.5], baseline=0.0)
    assert _one("gap", worse, a="minus", b="baseline", not_worse_by=0.1).verdict == "contradicted"


# ---------------------------------------------------------------------------------------------------------
# monotonicity
# ---------------------------------------------------------------------------------------------------------
def test_rises_with_checks_every_step():
    """A clearly positive slope over four points, with the third step going clearly down: the slope alone reads
    'holds'; a monotone trend (the default) is contradicted by the step."""
    data = _points(BASE[:4], p1=[0.0, 0.02, -0.01, 0.0], p2=[1.0, 1.01, 0.99, 1.0], p3=[0.5, 0.52, 0.49, 0.5],
                   p4=[3.0, 3.01, 3.0, 2.99])
    pts = ["p1", "p2", "p3", "p4"]
    slope_only = _one("trend", data, points=pts, direction="increasing", monotone=False)
    assert slope_only.verdict == "holds", slope_only.line()
    v = _one("trend", data, points=pts, direction="increasing")
    assert v.verdict == "contradicted" and "p3 - p2 contradicts it" in v.reason, v.line()
    assert v.rule == "PSNR monotonically increasing over p1, p2, p3, p4"
    # an undecided dip blocks nothing; a significant rise at every step holds
    ok = _points(BASE[:4], p1=0.0, p2=[1.0, 1.01, 0.99, 1.0], p3=[2.0, 2.01, 2.0, 1.98], p4=3.0)
    assert _one("trend", ok, points=pts, direction="increasing").verdict == "holds"


# ---------------------------------------------------------------------------------------------------------
# contrast and failure counts
# ---------------------------------------------------------------------------------------------------------
def test_contrast_decides_minor_gap_as_the_paper_says_it():
    """xunit_budget at this proxy: r=1 gains 0.48 dB over the ConvNet and r=9 a further 0.20 dB -- 70% of the
    total at r=1. 'xNet with 1x1 xUnits exceeds the ConvNet by only a minor gap' (at most half of what r=1 -> r=9
    adds) is contradicted, where the old encoding (r=1 - ConvNet >= 0) held."""
    data = _points(BASE[:3], convnet=0.0, r1=[0.48, 0.50, 0.46], r9=[0.68, 0.71, 0.65])
    old = _one("gap", data, a="r1", b="convnet", at_least=0)
    assert old.verdict == "holds"
    v = _one("contrast", data, gain=["r1", "convnet"], versus=["r9", "r1"], at_most=0.5)
    assert v.verdict == "contradicted" and v.rule == "r1 - convnet <= 0.5 x (r9 - r1)", v.line()
    assert v.estimate == pytest.approx(0.48 - 0.5 * 0.2, abs=1e-9)
    minor = _points(BASE[:3], convnet=0.0, r1=[0.05, 0.06, 0.04], r9=[0.68, 0.71, 0.65])
    assert _one("contrast", minor, gain=["r1", "convnet"], versus=["r9", "r1"], at_most=0.5).verdict == "holds"
    with pytest.raises(SpecError, match="a fraction below 1"):
        _claim("contrast", gain=["r1", "convnet"], versus=["r9", "r1"], at_most=2)


def test_failures_are_decided_on_counts_with_an_exact_test():
    """'Without the gate the deep design fails': 4 of 4 seeds degenerate or diverged vs 0 of 4 (Fisher p = 1/70);
    3 of 3 vs 0 of 3 (p = 1/20) cannot decide it and says four seeds per point would."""
    assert fisher_greater(4, 4, 0, 4) == pytest.approx(1 / 70) and fisher_greater(3, 3, 0, 3) == pytest.approx(0.05)
    ok = {s: 28.0 + 0.1 * s for s in range(4)}
    v = evaluate_claims([_claim("failures", point="gateless", more_than=["gated"])], {"gated": ok}, {},
                        failures={"gateless": {0: "degenerate", 1: "degenerate", 2: "diverged", 3: "degenerate"}})[0]
    assert v.verdict == "holds" and v.p_value == pytest.approx(1 / 70), v.line()
    assert "failed 4/4 vs 0/4 seeds" in v.line() and "3 degenerate, 1 diverged" in v.measured_text()
    v = evaluate_claims([_claim("failures", point="gateless", more_than=["gated"])],
                        {"gated": {s: ok[s] for s in range(3)}}, {},
                        failures={"gateless": {0: "degenerate", 1: "diverged", 2: "degenerate"}})[0]
    assert v.verdict == "inconclusive" and v.seeds_needed == 4 and "about 4 seeds" in v.needs, v.line()


# ---------------------------------------------------------------------------------------------------------
# validity gates
# ---------------------------------------------------------------------------------------------------------
def test_degenerate_seeds_never_enter_a_mean():
    """A point whose seeds all returned their input (15.185 dB, the noisy input's PSNR) is not 'beaten': it has
    no valid seed, so the claim is inconclusive and says so; a partly degenerate point is decided on the rest,
    with the exclusion named."""
    good = {s: 28.0 + 0.1 * s for s in range(3)}
    c = _claim("ordering", order=["gated", "gateless"])
    v = evaluate_claims([c], {"gated": good}, {}, failures={"gateless": {0: "degenerate", 1: "degenerate",
                                                                         2: "degenerate"}})[0]
    assert v.verdict == "inconclusive" and "no valid seed (3 degenerate)" in v.measured_text(), v.line()
    assert "gateless: 3 degenerate seeds excluded" in v.line()
    partly = {s: 27.0 + 0.1 * s + 0.01 * (s == 1) for s in range(3)}
    v = evaluate_claims([c], {"gated": good, "gateless": partly}, {}, failures={"gateless": {3: "degenerate"}})[0]
    assert v.verdict == "holds" and "gateless: 1 degenerate seed excluded" in v.line(), v.line()


def test_an_under_trained_point_decides_nothing():
    """A 1 dB gap that holds, unless a point still gained more than a quarter of it over the last third of
    training; a gain below the gate (and the 0.05 dB floor) changes nothing."""
    data = _points(BASE[:3], A=[1.0, 1.02, 0.98], B=0.0)
    c = _claim("ordering", order=["A", "B"])
    assert evaluate_claims([c], data, {}, gains={"A": {0: 0.2, 1: 0.2, 2: 0.2}})[0].verdict == "holds"
    v = evaluate_claims([c], data, {}, gains={"B": {0: 0.3, 1: 0.3, 2: 0.3}})[0]
    assert v.verdict == "inconclusive" and v.reason == "under-trained (it would read holds otherwise)", v.line()
    assert "B +0.30 dB; gate 0.25 dB" in v.line() and "more steps, not more seeds" in v.line()
    # a claim of a small difference is gated at 0.05 dB
    tiny = _points(BASE[:3], A=[0.1, 0.11, 0.09], B=0.0)
    v = evaluate_claims([c], tiny, {}, gains={"A": {0: 0.06, 1: 0.06, 2: 0.06}})[0]
    assert v.verdict == "inconclusive" and "gate 0.05 dB" in v.line()


# ---------------------------------------------------------------------------------------------------------
# what a verdict line shows
# ---------------------------------------------------------------------------------------------------------
def test_per_seed_values_beside_every_interval_and_the_partial_tag():
    data = _points(BASE[:3], A=[0.38, 0.52, 0.33], B=0.0)
    c = load_claim({**HEAD, "kind": "ordering", "order": ["A", "B"], "tested": "partial",
                    "untested": "'and improves as the filters grow'", "evidence": "single-run table values"},
                   "claims[0]")
    v = evaluate_claims([c], data, {})[0]
    assert "3 seeds: +0.380, +0.520, +0.330" in v.line(), v.line()
    assert "partly tested: not tested: 'and improves as the filters grow'" in v.line()
    assert "paper's evidence: single-run table values" in v.line()
    row = v.row()
    assert row["per_seed"] == "+0.3800 +0.5200 +0.3300" and row["tested"] == "partial"
    with pytest.raises(SpecError, match="is required"):
        load_claim({**HEAD, "kind": "ordering", "order": ["A", "B"], "tested": "partial"}, "claims[0]")
    with pytest.raises(SpecError, match="goes with `tested: partial`"):
        load_claim({**HEAD, "kind": "ordering", "order": ["A", "B"], "untested": "x"}, "claims[0]")
    with pytest.raises(SpecError, match="must be one of full, partial"):
        load_claim({**HEAD, "kind": "ordering", "order": ["A", "B"], "tested": "most"}, "claims[0]")


def test_one_sided_tests_read_off_the_printed_interval():
    """'holds' exactly when the printed 95% interval lies above the bound (p < 2.5%)."""
    c = comparison("A - B", [0.1, 0.3, 0.2])
    half = c.high - c.estimate
    assert above(c, c.low - 1e-9).outcome == "holds" and above(c, c.low + 1e-9).outcome == "inconclusive"
    assert above(c, c.high + 1e-9).outcome == "contradicted"
    assert above(c, c.low - 1e-9).p_holds < ALPHA < above(c, c.low + 1e-9).p_holds
    assert half == pytest.approx(t_quantile(0.975, 2) * 0.1 / math.sqrt(3))


# ---------------------------------------------------------------------------------------------------------
# the ledger glue: failures and gains read from a study's ledger; --plan sizes the next run from it
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def three_seed_ledger(tmp_path):
    from archsearch.study import load_study
    from archsearch.testing.ledger import add_trial, new_ledger
    from archsearch.testing.studies import write_study

    claims = [{**HEAD, "id": "r5_beats_r1", "kind": "ordering",
               "order": ["xnet xunit_kernel_size=5", "xnet xunit_kernel_size=1"]},
              {**HEAD, "id": "convnet_fails", "kind": "failures", "point": "convnet",
               "more_than": ["xnet xunit_kernel_size=1"]}]
    path = write_study(tmp_path, seeds=[0, 1, 2], claims=claims)
    study = load_study(path)
    ostudy = new_ledger(study)
    for seed in (0, 1, 2):
        for r, base, gain in ((1, 27.4, 0.01), (5, 27.6, 0.02)):
            add_trial(ostudy, design="xnet", psnr=base + 0.3 * seed + 0.05 * (seed == 1 and r == 5), seed=seed,
                      arguments={"xunit_kernel_size": r}, label=f"xnet xunit_kernel_size={r}", sweep_value=r,
                      val_gain_last_third=gain)
    from optuna.trial import TrialState

    for seed in (0, 1, 2):
        add_trial(ostudy, design="convnet", state=TrialState.FAIL, reason="diverged: loss is nan at step 3",
                  label="convnet", seed=seed)
    return path, study


def test_ledger_points_read_diverged_trials_and_gains(three_seed_ledger):
    from archsearch.report.verdicts import ledger_points, study_verdicts
    from archsearch.study.results import ledger_frame

    _, study = three_seed_ledger
    pts = ledger_points(ledger_frame(study))
    assert pts.failures == {"convnet": {0: "diverged", 1: "diverged", 2: "diverged"}}
    assert pts.gains["xnet xunit_kernel_size=5"] == {0: 0.02, 1: 0.02, 2: 0.02}
    assert "convnet" not in pts.per_seed and sorted(pts.per_seed["xnet xunit_kernel_size=1"]) == [0, 1, 2]
    ordering, failures = study_verdicts(study)
    assert ordering.verdict in ("holds", "inconclusive") and ordering.n_seeds == 3
    # 3 of 3 vs 0 of 3: p = 1/20, undecided; four seeds per point would decide it
    assert failures.verdict == "inconclusive" and "failed 3/3 vs 0/3 seeds" in failures.line()
    assert failures.seeds_needed == 4


def test_plan_sizes_the_next_run_from_the_earlier_ledger(three_seed_ledger, capsys):
    from archsearch.cli import main

    path, study = three_seed_ledger
    ledger = study.output_dir / "ledger.db"
    before = ledger.stat().st_mtime_ns
    assert main(["run", str(path), "--plan", "--plan-steps", "0"]) == 0
    out = capsys.readouterr().out
    assert "Seeds for 80% power, sized from the earlier run in" in out, out
    assert "  r5_beats_r1: " in out and "at 3 shared seeds; an 80%-power design needs about" in out
    assert "  convnet_fails: inconclusive at 3 shared seeds; an 80%-power design needs about 4 seeds" in out
    assert ledger.stat().st_mtime_ns == before  # read only


def test_degenerate_trials_in_a_ledger_are_failures_not_means(tmp_path):
    """A ledger where the ConvNet returned its input on every seed (15.185 dB, the noisy input's PSNR; stored as
    DEGENERATE by the trial): the claim 'xNet r=1 beats the ConvNet' is not won against it -- the ConvNet has no
    valid seed -- while 'the ConvNet fails more often' counts its seeds as failures."""
    from archsearch.report.verdicts import ledger_points, study_verdicts
    from archsearch.study import load_study
    from archsearch.study.results import ledger_frame
    from archsearch.testing.ledger import add_trial, new_ledger
    from archsearch.testing.studies import write_study

    claims = [{**HEAD, "id": "r1_beats_convnet", "kind": "ordering", "order": ["xnet xunit_kernel_size=1", "convnet"]},
              {**HEAD, "id": "convnet_fails", "kind": "failures", "point": "convnet",
               "more_than": ["xnet xunit_kernel_size=1"]}]
    study = load_study(write_study(tmp_path, seeds=[0, 1, 2, 3], claims=claims))
    ostudy = new_ledger(study)
    for seed in range(4):
        add_trial(ostudy, design="convnet", psnr=15.185, seed=seed, label="convnet", baseline_psnr=15.185,
                  validity="degenerate", validity_per_seed=["degenerate"])
        add_trial(ostudy, design="xnet", psnr=27.4 + 0.1 * seed, seed=seed, label="xnet xunit_kernel_size=1",
                  sweep_value=1, arguments={"xunit_kernel_size": 1}, baseline_psnr=15.185, validity="ok",
                  validity_per_seed=["ok"])
    pts = ledger_points(ledger_frame(study))
    assert "convnet" not in pts.per_seed and pts.failures["convnet"] == {s: "degenerate" for s in range(4)}
    beats, fails = study_verdicts(study)
    assert beats.verdict == "inconclusive" and "convnet: no valid seed (4 degenerate)" in beats.measured_text()
    assert fails.verdict == "holds" and fails.p_value == pytest.approx(1 / 70), fails.line()
