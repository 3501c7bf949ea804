"""Families and the budget solver: monotone counts, exact and closest solutions, infeasible budgets, tolerances,
the activation-share target, invalid knob values."""

from __future__ import annotations

import pytest

from archsearch import BudgetError, SpecError, count, get_family
from archsearch.families import families
from archsearch.solver import Budget, solve

FAMILIES = families()


def _measure(spec, metric: str) -> float:
    c = count(spec)
    return float(c.params) if metric == "params" else c.macs_per_pixel


def _sample_values(knob, default: int) -> list[int]:
    """A few valid values of a knob: its low end, around the default, and larger."""
    raw = {knob.low, knob.low + knob.step, default - knob.step, default, default + knob.step, 2 * default,
           3 * default + knob.step, 4 * default}
    return sorted(v for v in raw if knob.low <= v <= knob.high and (v - knob.low) % knob.step == 0)


KNOB_CASES = [
    pytest.param(fam.name, knob, metric, id=f"{fam.name}-{knob}-{metric}")
    for fam in FAMILIES.values() for knob in fam.knobs for metric in ("params", "macs")
]


@pytest.mark.parametrize("family, knob, metric", KNOB_CASES)
def test_counts_monotone_in_every_knob(family, knob, metric):
    """The solver's binary search relies on counts being monotone in every knob (families.py docstring): rising,
    or falling throughout (NSR's MACs in the sparsity groups at the same size)."""
    fam = get_family(family)
    values = _sample_values(fam.knob(knob), fam.defaults[knob])
    measured = []
    for v in values:
        try:
            measured.append((v, _measure(fam(**{knob: v}), metric)))
        except SpecError:  # an invalid combination (e.g. width not divisible by the groups): skipped by the solver
            continue
    assert len(measured) >= 3, f"too few valid values of {knob} to check: {values}"
    sign = -1 if measured[-1][1] < measured[0][1] else 1
    for (v0, m0), (v1, m1) in zip(measured, measured[1:]):
        assert sign * m1 >= sign * m0, (f"{family}: {metric} is not monotone in {knob}: {m0:,.0f} ({knob}={v0}) "
                                         f"then {m1:,.0f} ({knob}={v1}), overall {'falling' if sign < 0 else 'rising'}")
    if (family, knob, metric) != ("nsr_resnet", "sparsity_groups", "macs"):
        assert sign == 1, f"{family}: {metric} falls with {knob}; only NSR's MACs in sparsity_groups may"


@pytest.mark.parametrize("family, knob, metric", KNOB_CASES)
def test_solve_hits_an_exact_count(family, knob, metric):
    fam = get_family(family)
    kn = fam.knob(knob)
    target = None
    for v in kn.values(fam.defaults[knob] + kn.step):  # the first valid value above the default
        try:
            target = _measure(fam(**{knob: v}), metric)
            break
        except SpecError:
            continue
    assert target is not None
    sol = solve(family, knob, Budget(metric, target))
    assert sol.rel_error == 0
    assert sol.achieved == target
    assert _measure(sol.spec, metric) == target
    assert sol.arguments[knob] == sol.value
    assert sol.spec == fam(**{knob: sol.value})


BRUTE_CASES = [
    ("convnet", "depth", {}, None, None),
    ("convnet", "width", {"depth": 5}, 1, 200),
    ("xnet", "width", {"depth": 3}, 1, 200),
    ("xnet", "xunit_kernel_size", {"width": 32}, None, None),
    ("srcnn", "n1", {}, 1, 200),
    ("memnet", "recursions", {"n_blocks": 2, "channels": 16}, None, None),
    ("memnet", "channels", {"n_blocks": 2, "recursions": 2}, 1, 100),
    ("resnet", "expansion", {"n_blocks": 4}, None, None),
    ("resnet", "channels", {"n_blocks": 4}, 1, 100),
    ("nsr_resnet", "n_blocks", {"channels": 16}, 1, 64),
]


@pytest.mark.parametrize("metric", ["params", "macs"])
@pytest.mark.parametrize("family, knob, fixed, low, high", BRUTE_CASES)
def test_solve_picks_the_closest_value(family, knob, fixed, low, high, metric):
    """Budgets between achievable counts: the solution is at least as close as every other valid value."""
    fam = get_family(family)
    values = list(fam.knob(knob).values(low, high))
    counts = {v: _measure(fam(**fixed, **{knob: v}), metric) for v in values}
    lo, hi = min(counts.values()), max(counts.values())
    for frac in (0.013, 0.31, 0.5, 0.77, 0.999):
        target = lo + frac * (hi - lo) + 0.37  # off every achievable count
        sol = solve(family, knob, Budget(metric, target), fixed, low=low, high=high)
        best = min(abs(c - target) for c in counts.values())
        assert abs(sol.achieved - target) == best, (target, sol.value, sol.achieved)
        assert sol.rel_error == pytest.approx(abs(sol.achieved - target) / target)
        assert counts[sol.value] == sol.achieved


def test_infeasible_budgets_name_smallest_and_largest():
    fam = get_family("convnet")
    smallest = count(fam(depth=2, width=8)).params
    largest = count(fam(depth=200, width=8)).params
    for target in (smallest / 2, largest * 2):
        with pytest.raises(BudgetError) as info:
            solve("convnet", "depth", Budget("params", target), {"width": 8})
        msg = str(info.value)
        assert f"{smallest:,.0f}" in msg and f"{largest:,.0f}" in msg
        assert "depth=2" in msg and "depth=200" in msg


def test_infeasible_mac_budget():
    fam = get_family("srcnn")
    with pytest.raises(BudgetError) as info:
        solve("srcnn", "n2", Budget("macs", 10.0))
    assert f"{count(fam(n2=1)).macs_per_pixel:,.0f}" in str(info.value)
    assert "MACs/pixel" in str(info.value)


def test_tolerance_enforced():
    fam = get_family("convnet")
    c5, c6 = (count(fam(depth=d, width=16)).params for d in (5, 6))
    target = c5 + 0.5 * (c6 - c5)  # half-way: relative error ~ (c6 - c5) / 2 / target
    rel = (c6 - c5) / 2 / target
    with pytest.raises(BudgetError) as info:
        solve("convnet", "depth", Budget("params", target, tolerance=rel / 2), {"width": 16})
    assert "closest" in str(info.value)
    sol = solve("convnet", "depth", Budget("params", target, tolerance=rel * 1.01), {"width": 16})
    assert sol.value in (5, 6) and sol.rel_error <= rel * 1.01


def test_tolerance_admits_a_budget_just_beyond_the_range():
    fam = get_family("convnet")
    largest = count(fam(depth=200, width=4)).params
    sol = solve("convnet", "depth", Budget("params", largest * 1.01, tolerance=0.02), {"width": 4})
    assert sol.value == 200
    with pytest.raises(BudgetError):
        solve("convnet", "depth", Budget("params", largest * 1.01, tolerance=0.005), {"width": 4})


def test_low_high_restrict_the_search():
    fam = get_family("convnet")
    top = count(fam(depth=12, width=8)).params
    sol = solve("convnet", "depth", Budget("params", top), {"width": 8}, low=3, high=12)
    assert sol.value == 12
    with pytest.raises(BudgetError):
        solve("convnet", "depth", Budget("params", top + 10_000), {"width": 8}, low=3, high=12)


def test_activation_share_target_picks_the_closest_share():
    """xUnit paper Fig. 4: at 99,136 parameters, which xUnit kernel size puts ~15% in the activations?"""
    budget = Budget("params", 99_136)
    rs = [1, 3, 5, 7, 9, 11]
    sol = solve("xnet", "width", budget, {"depth": 4}, target_activation_pct=15.0, via="xunit_kernel_size",
                via_values=rs)
    shares = {}
    for r in rs:
        s = solve("xnet", "width", budget, {"depth": 4, "xunit_kernel_size": r})
        shares[r] = s.counts.activation_param_pct
    best_r = min(rs, key=lambda r: abs(shares[r] - 15.0))
    assert sol.arguments["xunit_kernel_size"] == best_r
    assert abs(sol.counts.activation_param_pct - 15.0) == min(abs(v - 15.0) for v in shares.values())
    assert sol.rel_error < 0.02  # width moves in steps of ~1.5% of the budget here


def test_activation_share_target_over_the_whole_via_range():
    budget = Budget("params", 99_136)
    for target in (0.0, 30.0):
        sol = solve("xnet", "width", budget, {"depth": 4}, target_activation_pct=target, via="xunit_kernel_size")
        others = [solve("xnet", "width", budget, {"depth": 4, "xunit_kernel_size": r}).counts.activation_param_pct
                  for r in get_family("xnet").knob("xunit_kernel_size").values()]
        assert abs(sol.counts.activation_param_pct - target) == min(abs(p - target) for p in others)


def test_activation_share_needs_via():
    with pytest.raises(SpecError) as info:
        solve("xnet", "width", Budget("params", 99_136), target_activation_pct=15.0)
    assert info.value.path == "via"


def test_invalid_knob_values_are_skipped():
    """nsr_resnet with 4 sparsity groups and expansion 1: the hidden width (= channels) must be divisible by 4."""
    fixed = {"sparsity_groups": 4, "expansion": 1, "n_blocks": 4}
    fam = get_family("nsr_resnet")
    with pytest.raises(SpecError):
        fam(**fixed, channels=30)
    c28, c32 = (count(fam(**fixed, channels=c)).params for c in (28, 32))
    for target in (c28 + 0.4 * (c32 - c28), c28 + 0.6 * (c32 - c28)):
        sol = solve("nsr_resnet", "channels", Budget("params", target), fixed)
        assert sol.value == (28 if target - c28 < c32 - target else 32)
    # the low end of the range (channels 1..3) is invalid: the smallest achievable is channels=4
    with pytest.raises(BudgetError) as info:
        solve("nsr_resnet", "channels", Budget("params", 10), fixed)
    assert "channels=4" in str(info.value)
    # every solution is a valid value
    for target in (5_000, 50_000, 500_000):
        assert solve("nsr_resnet", "channels", Budget("params", target), fixed).value % 4 == 0


def test_nsr_sparsity_groups_mac_budget():
    """Same-size regime: k groups of hidden/k channels. Solving k for the MACs of k=4 should give k=4."""
    fam = get_family("nsr_resnet")
    target = count(fam(sparsity_groups=4)).macs_per_pixel
    sol = solve("nsr_resnet", "sparsity_groups", Budget("macs", target))
    assert sol.value == 4 and sol.rel_error == 0


def test_free_knob_must_not_be_fixed():
    with pytest.raises(SpecError) as info:
        solve("convnet", "depth", Budget("params", 1e5), {"depth": 5})
    assert info.value.path == "fixed"


def test_unknown_knob_and_family():
    with pytest.raises(SpecError) as info:
        solve("convnet", "dept", Budget("params", 1e5))
    assert "did you mean 'depth'" in str(info.value)
    with pytest.raises(KeyError) as kinfo:
        solve("convnett", "depth", Budget("params", 1e5))
    assert "convnet" in str(kinfo.value)


@pytest.mark.parametrize("kw, path", [
    (dict(metric="flops", value=1.0), "budget.metric"),
    (dict(metric="params", value=0), "budget.value"),
    (dict(metric="params", value=True), "budget.value"),
    (dict(metric="params", value=1.0, tolerance=1.5), "budget.tolerance"),
])
def test_bad_budget(kw, path):
    with pytest.raises(SpecError) as info:
        Budget(**kw)
    assert info.value.path == path


def test_family_rejects_bad_knob_values():
    fam = get_family("xnet")
    with pytest.raises(SpecError) as info:
        fam(xunit_kernel_size=4)
    assert info.value.path == "xunit_kernel_size" and "steps of 2" in str(info.value)
    with pytest.raises(SpecError) as info:
        fam(widht=3)
    assert "did you mean 'width'" in str(info.value)
