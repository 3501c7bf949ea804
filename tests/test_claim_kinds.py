"""Claim kinds: a contract kit run over every kind in ``archsearch.claims.CLAIM_KINDS``, each kind's parsing,
rule text and decision on tiny per-seed data with known answers, and a throw-away kind registered in a test to
show that a new kind is one class and its registration.

Parametrized over the registry x the minimal examples of :data:`EXAMPLES`: a new kind gets the contract tests
without new test code -- and a registered kind without an example fails.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from archsearch.claims import (
    CLAIM_KINDS,
    COMMON,
    RULES,
    VERDICTS,
    Claim,
    Comparison,
    Decision,
    Measured,
    PointRef,
    PublishedMap,
    evaluate_claims,
    load_claim,
    load_claims,
    parse_ref,
    register_kind,
)
from archsearch.claims.stats import above, t_interval
from archsearch.errors import RegistryError, SpecError

HEAD = {"id": "c1", "source": "a paper, Table 1", "text": "a claim"}

#: A minimal valid claim of each kind (its own keys only) over the points A, B, C of :data:`TINY`.
EXAMPLES: dict[str, dict[str, Any]] = {
    "ordering": {"order": ["A", "B"]},
    "gap": {"a": "A", "b": "B", "within": 0.5},
    "trend": {"points": ["B", "A"], "direction": "increasing"},
    "plateau": {"points": ["A", "B"], "tolerance": 0.5},
    "extreme": {"point": "B", "is": "worst"},
    "contrast": {"gain": ["C", "B"], "versus": ["A", "C"], "at_most": 0.5},
    "failures": {"point": "A", "more_than": ["B"]},
    "size": {"sizes": {"A": 100, "B": 200}},
}
#: The exact counts of A, B, C for the kinds that read sizes (``reads = "sizes"``): A 102, B 250 (25% off 200).
SIZES = {"A": {"n_params": 102}, "B": {"n_params": 250}, "C": {"n_params": 300}}

# per-seed PSNR whose differences are the same on every seed: each interval collapses to its estimate, so the
# answers are exact -- A - B = 1.0, A - C = 0.5, C - B = 0.5 (all representable in binary floating point)
TINY = {"A": {0: 31.0, 1: 32.0, 2: 33.0},
        "B": {0: 30.0, 1: 31.0, 2: 32.0},
        "C": {0: 30.5, 1: 31.5, 2: 32.5}}


def _load(kind: str, **fields: Any):
    return load_claim({**HEAD, "kind": kind, **fields}, "claims[0]")


def _decide(kind: str, data: Mapping[str, Mapping[Any, float]] = TINY, values=None, **fields: Any):
    return evaluate_claims([_load(kind, **fields)], data, values or {}, scale="proxy")[0]


def _example(kind: str) -> dict[str, Any]:
    if kind not in EXAMPLES:
        pytest.fail(f"registered claim kind {kind!r} has no example in tests/test_claim_kinds.py EXAMPLES: add a "
                    "minimal valid claim over the points A, B, C so the contract kit covers it")
    return EXAMPLES[kind]


# ---------------------------------------------------------------------------------------------------------
# the contract kit: every registered kind
# ---------------------------------------------------------------------------------------------------------
def test_every_registered_kind_has_an_example():
    assert sorted(CLAIM_KINDS) == sorted(EXAMPLES), "a kind without an example, or an example without a kind"


@pytest.mark.parametrize("kind", CLAIM_KINDS.names())
def test_kind_parses_its_minimal_example(kind):
    c = _load(kind, **_example(kind))
    cls = CLAIM_KINDS[kind]
    assert isinstance(c, cls) and isinstance(c, Claim) and c.kind == kind and (c.id, c.text) == ("c1", "a claim")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.id = "c2"  # type: ignore[misc]
    assert set(cls.keys()) >= set(_example(kind)) and not set(cls.keys()) & set(COMMON)
    assert c.refs() and all(isinstance(r, PointRef) for _, r in c.refs())
    assert {path.split("[")[0] for path, _ in c.refs()} <= set(cls.keys())  # paths name the file's keys


@pytest.mark.parametrize("kind", CLAIM_KINDS.names())
def test_kind_refuses_unknown_and_missing_fields(kind):
    ex = _example(kind)
    with pytest.raises(SpecError) as err:
        _load(kind, **ex, colour="red")
    assert err.value.path == "claims[0].colour" and f"unknown key for kind {kind}; allowed: " in err.value.message
    assert ", ".join((*COMMON, *CLAIM_KINDS[kind].keys())) in err.value.message
    for key in CLAIM_KINDS[kind].required:
        with pytest.raises(SpecError) as err:
            _load(kind, **{k: v for k, v in ex.items() if k != key})
        assert err.value.path == f"claims[0].{key}" and f"is required for kind {kind}" in err.value.message
    for other in CLAIM_KINDS.names():  # a field of another kind is named as such
        for key in set(CLAIM_KINDS[other].keys()) - set(CLAIM_KINDS[kind].keys()):
            with pytest.raises(SpecError) as err:
                _load(kind, **ex, **{key: 1})
            assert f"(a field of kind {other}" in err.value.message or f"/ {other}" in err.value.message


@pytest.mark.parametrize("kind", CLAIM_KINDS.names())
def test_kind_has_a_rule_and_a_description(kind):
    c = _load(kind, **_example(kind))
    assert isinstance(c.rule, str) and c.rule.strip()
    assert all(r.text in c.rule for _, r in c.refs())  # the rule names the points it compares
    assert CLAIM_KINDS[kind].description.strip() and RULES[kind] == CLAIM_KINDS[kind].description


@pytest.mark.parametrize("kind", CLAIM_KINDS.names())
def test_kind_decides_on_per_seed_data(kind):
    c = _load(kind, **_example(kind))
    if CLAIM_KINDS[kind].reads == "sizes":  # exact counts: no seeds, no interval, outside Holm's correction
        v = evaluate_claims([c], TINY, {}, scale="proxy", sizes=SIZES)[0]
        assert v.verdict in VERDICTS and v.kind == kind and v.rule == c.rule and math.isnan(v.p_value), v.line()
        assert [p.ref for p in v.points] == list(dict.fromkeys(r.text for _, r in c.refs()))
        missing = c.refs()[0][1].text
        v = evaluate_claims([c], {k: s for k, s in TINY.items() if k != missing}, {}, scale="proxy", sizes=SIZES)[0]
        assert v.verdict == "inconclusive" and f"no complete trial of point {missing}" in v.reason
        return
    v = evaluate_claims([c], TINY, {}, scale="proxy")[0]
    assert v.verdict in VERDICTS and v.kind == kind and v.rule == c.rule and v.n_seeds == 3, v.line()
    assert v.comparisons and all(x.outcome in VERDICTS for x in v.comparisons) and math.isfinite(v.estimate)
    assert [p.ref for p in v.points] == list(dict.fromkeys(r.text for _, r in c.refs()))
    # the kind's own decide, straight from per-seed data
    d = c.decide(Measured(TINY, {r.text: r.text for _, r in c.refs()}, {}, tuple(TINY)))
    assert isinstance(d, Decision) and d.verdict == v.verdict
    # one seed: no interval, inconclusive with the reason
    one = {k: {0: s[0]} for k, s in TINY.items()}
    v = evaluate_claims([c], one, {}, scale="proxy")[0]
    assert v.verdict == "inconclusive" and "needs ≥ 3 seeds" in v.reason, v.line()
    # a point missing from the ledger: inconclusive, naming it
    missing = c.refs()[0][1].text
    v = evaluate_claims([c], {k: s for k, s in TINY.items() if k != missing}, {}, scale="proxy")[0]
    assert v.verdict == "inconclusive" and f"no complete trial of point {missing}" in v.reason
    assert v.as_dict()["claim_id"] == "c1" and v.row()["kind"] == kind


def test_registry_refuses_a_second_kind_of_the_same_name_and_a_non_kind():
    with pytest.raises(RegistryError, match="already registered"):
        register_kind(CLAIM_KINDS["gap"])

    @dataclass(frozen=True)
    class NoRule(Claim):
        kind = "no_rule"
        description = "never registered"

        @classmethod
        def parse(cls, data, path):
            return {}

    with pytest.raises(RegistryError, match="must implement decide, rule"):
        register_kind(NoRule)
    with pytest.raises(RegistryError, match="frozen dataclass subclass of Claim"):
        register_kind(dict)
    assert "no_rule" not in CLAIM_KINDS


# ---------------------------------------------------------------------------------------------------------
# each kind: parsing, rule text, decisions with known answers
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,fields,rule", [
    ("ordering", {"order": ["A", "C", "B"]}, "mean PSNR A > C > B"),
    ("gap", {"a": "A", "b": "B", "within": 0.25}, "|A - B| <= 0.25 dB"),
    ("gap", {"a": "A", "b": "B", "at_least": 1}, "A - B >= 1 dB"),
    ("gap", {"a": "A", "b": "B", "at_most": -0.5}, "A - B <= -0.5 dB"),
    ("trend", {"points": ["B", "@5"], "direction": "decreasing"}, "PSNR decreasing over B, @5"),
    ("plateau", {"points": ["A", "B", "C"], "tolerance": 0.1}, "every pair within 0.1 dB among A, B, C"),
    ("extreme", {"point": "B", "is": "worst"}, "B is the worst among every point of the study"),
    ("extreme", {"point": "A", "is": "best", "among": ["B", "C"]}, "A is the best among B, C"),
])
def test_rule_text(kind, fields, rule):
    assert _load(kind, **fields).rule == rule


def test_kinds_parse_their_fields_into_typed_values():
    c = _load("ordering", order=[" A ", "@5"])
    assert c.order == (PointRef("A", "A"), PointRef("@5", None, 5))
    c = _load("gap", a="A", b="B", at_least=1)
    assert (c.a.text, c.b.text, c.at_least, c.within, c.at_most) == ("A", "B", 1.0, None, None)
    assert isinstance(c.at_least, float)
    c = _load("trend", points=["@0", "@1.5", "@true"], direction="increasing")
    assert [r.value for r in c.points] == [0, 1.5, True] and c.direction == "increasing"
    c = _load("plateau", points=["A", "B"], tolerance=2)
    assert c.tolerance == 2.0 and c.points[1].label == "B"
    c = _load("extreme", point="A", among=["B"], **{"is": "best"})
    assert (c.point.text, c.extreme, [r.text for r in c.among]) == ("A", "best", ["B"])
    assert [p for p, _ in c.refs()] == ["among[0]", "point"]  # lists first: the order verdicts list points in
    c = _load("ordering", order=["A", "B"], published=["xunit_t1_s25_xdncnn"])
    assert c.published[0].id == "xunit_t1_s25_xdncnn" and c.published[0].value == 29.21  # the row, resolved


@pytest.mark.parametrize("kind,fields,path,message", [
    ("ordering", {"order": "A"}, "claims[0].order", "must be a list of at least 2 points, got 'A'"),
    ("ordering", {"order": ["A", " A"]}, "claims[0].order[1]", "repeats the point 'A'; each point once"),
    ("gap", {"a": "A", "b": "A", "within": 1}, "claims[0].b", "must be another point than a ('A')"),
    ("gap", {"a": "A", "b": "B", "within": 0}, "claims[0].within", "must be a finite number of dB > 0, got 0"),
    ("gap", {"a": "A", "b": "B", "at_least": "1"}, "claims[0].at_least", "must be a finite number of dB, got '1'"),
    ("gap", {"a": "A", "b": "B", "at_least": 1, "at_most": 2}, "claims[0]",
     "kind gap needs exactly one of within, at_least, at_most, not_worse_by, about, got at_least, at_most"),
    ("trend", {"points": ["A", "B"], "direction": "increasin"}, "claims[0].direction",
     "must be one of increasing, decreasing (did you mean 'increasing'?), got 'increasin'"),
    ("plateau", {"points": ["A", "B"], "tolerance": float("nan")}, "claims[0].tolerance",
     "must be a finite number of dB > 0, got nan"),
    ("extreme", {"point": "A", "is": "best", "among": ["A"]}, "claims[0].among",
     "must name at least one point besides `point`"),
    ("extreme", {"point": "@", "is": "best"}, "claims[0].point", "\"@\" must be followed by a sweep value"),
    ("extreme", {"point": "A", "is": "best", "order": ["A", "B"]}, "claims[0].order",
     "unknown key for kind extreme (a field of kind ordering)"),
    ("gap", {"a": "A", "b": "B", "within": 1, "points": ["A", "B"]}, "claims[0].points",
     "(a field of kind trend / plateau)"),
    ([1], {}, "claims[0].kind", "must be one of ordering, gap, trend, plateau, extreme, contrast, failures, size, got [1]"),
])
def test_parse_errors(kind, fields, path, message):
    with pytest.raises(SpecError) as err:
        _load(kind, **fields)
    assert err.value.path == path and message in err.value.message, str(err.value)


@pytest.mark.parametrize("kind,fields,verdict,head,estimate", [
    ("ordering", {"order": ["A", "C", "B"]}, "holds", "A - C", 0.5),  # holds: the least margin
    ("ordering", {"order": ["B", "A"]}, "contradicted", "B - A", -1.0),
    ("gap", {"a": "A", "b": "B", "at_least": 1.0}, "holds", "A - B", 1.0),  # CI low 1.0 >= 1.0
    ("gap", {"a": "A", "b": "B", "at_least": 1.5}, "contradicted", "A - B", 1.0),
    ("gap", {"a": "A", "b": "B", "at_most": 1.0}, "holds", "A - B", 1.0),
    ("gap", {"a": "A", "b": "B", "at_most": 0.5}, "contradicted", "A - B", 1.0),
    ("gap", {"a": "A", "b": "B", "within": 1.0}, "holds", "A - B", 1.0),  # [1, 1] inside [-1, 1]
    ("gap", {"a": "A", "b": "B", "within": 0.5}, "contradicted", "A - B", 1.0),
    ("trend", {"points": ["B", "C", "A"], "direction": "increasing"}, "holds", "slope", 0.5),
    ("trend", {"points": ["B", "C", "A"], "direction": "decreasing"}, "contradicted", "slope", 0.5),
    ("plateau", {"points": ["A", "B", "C"], "tolerance": 1.0}, "holds", "A - B", 1.0),  # holds: the widest pair
    ("plateau", {"points": ["A", "B", "C"], "tolerance": 0.75}, "contradicted", "A - B", 1.0),
    ("extreme", {"point": "B", "is": "worst"}, "holds", "C - B", 0.5),  # among every point of the study
    ("extreme", {"point": "A", "is": "best", "among": ["B", "C"]}, "holds", "A - C", 0.5),
    ("extreme", {"point": "C", "is": "worst"}, "contradicted", "B - C", -0.5),
])
def test_decisions_with_known_answers(kind, fields, verdict, head, estimate):
    v = _decide(kind, **fields)
    assert v.verdict == verdict, v.line()
    picked = [c for c in v.comparisons if c.estimate == v.estimate and c.name == head]
    assert picked and v.estimate == pytest.approx(estimate) and v.low == pytest.approx(estimate) \
        and v.high == pytest.approx(estimate), [(c.name, c.estimate, c.outcome) for c in v.comparisons]


def test_trend_uses_the_sweep_values_when_all_are_distinct_numbers():
    v = _decide("trend", values={"B": 0, "C": 5, "A": 10}, points=["@0", "@5", "@10"], direction="increasing")
    assert v.verdict == "holds" and v.unit == "dB per unit of sweep value" and "vs the sweep value" in v.method
    assert v.estimate == pytest.approx(0.1)
    v = _decide("trend", values={"B": 0, "C": 0, "A": 10}, points=["B", "C", "A"], direction="increasing")
    assert v.unit == "dB per point" and "position in the claim" in v.method and v.estimate == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------------------
# a new kind is one class and its registration
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExceedsPublished(Claim):
    """``point: A``, optional ``margin: m`` (dB, default 0): A's PSNR exceeds the claim's first published row
    by more than m. Per seed, PSNR(A) - published; holds when the t interval lies above m."""

    kind = "exceeds_published"
    required = ("point",)
    optional = ("margin",)
    description = "A - published: holds when the CI lies above the margin, contradicted when entirely below"

    point: PointRef
    margin: float = 0.0

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        if not data.get("published"):
            raise SpecError(f"{path}.published", "is required for kind exceeds_published: the row to exceed")
        return {"point": parse_ref(data["point"], f"{path}.point"), "margin": float(data.get("margin", 0.0))}

    @property
    def rule(self) -> str:
        return f"{self.point.text} > {self.published[0].id} + {self.margin:g} dB"

    def decide(self, measured: Measured) -> Decision:
        target = self.published[0].value  # resolved at load: no lookup here
        diffs = [p - target for p in measured.per_seed[measured.label(self.point.text)].values()]
        mean, lo, hi, n = t_interval(diffs)
        c = Comparison(f"{self.point.text} - published", mean, lo, hi, n)
        return Decision.of([above(c, self.margin)])


@pytest.fixture
def exceeds_published():
    register_kind(ExceedsPublished)
    try:
        yield ExceedsPublished
    finally:
        CLAIM_KINDS.remove("exceeds_published")


def test_a_throw_away_kind_loads_decides_and_is_listed(exceeds_published):
    raw = [{**HEAD, "kind": "ordering", "order": ["A", "B"]},
           {**HEAD, "id": "beats_dncnn", "kind": "exceeds_published", "point": "A", "margin": 0.5,
            "published": ["xunit_t1_s25_xdncnn"]}]  # 29.21 dB
    claims = load_claims(raw)
    assert isinstance(claims[1], exceeds_published) and claims[1].rule == "A > xunit_t1_s25_xdncnn + 0.5 dB"
    per_seed = {"A": {0: 30.2, 1: 30.3, 2: 30.25}, "B": {0: 29.0, 1: 29.1, 2: 29.0}}
    ordering, new = evaluate_claims(claims, per_seed, {}, scale="proxy")
    assert ordering.verdict == "holds" and new.verdict == "holds" and new.kind == "exceeds_published"
    assert new.estimate == pytest.approx(30.25 - 29.21) and new.published[0]["value"] == 29.21
    assert "claim beats_dncnn: holds (Δ=+1.040 dB" in new.line()
    # the kind's own errors, and the registry's in every message
    with pytest.raises(SpecError) as err:
        load_claims([{**raw[1], "published": []}])
    assert err.value.path == "claims[0].published" and "the row to exceed" in err.value.message
    with pytest.raises(SpecError) as err:
        load_claims([{**raw[0], "margin": 1}])
    assert "unknown key for kind ordering (a field of kind exceeds_published)" in err.value.message
    assert RULES["exceeds_published"] == ExceedsPublished.description and list(RULES)[-1] == "inconclusive"
    with pytest.raises(SpecError) as err:
        load_claims([{**raw[0], "kind": "exceeds_publishd"}])
    assert "failures, size, exceeds_published (did you mean 'exceeds_published'?)" in err.value.message


def test_the_throw_away_kind_is_gone_after_the_test():
    assert "exceeds_published" not in CLAIM_KINDS and "exceeds_published" not in RULES
    with pytest.raises(SpecError, match="must be one of ordering, gap, trend, plateau, extreme, contrast, failures, size, got"):
        load_claims([{**HEAD, "kind": "exceeds_published", "point": "A"}])


def test_a_study_file_loads_a_registered_kind(tmp_path, exceeds_published):
    """Through the study schema: the new kind's point is checked against the sweep, its row resolved."""
    from archsearch.errors import ConfigError
    from archsearch.study import load_study
    from archsearch.testing.studies import write_study

    claim = {**HEAD, "kind": "exceeds_published", "point": "@5", "published": ["xunit_t1_s25_xdncnn"]}
    study = load_study(write_study(tmp_path, claims=[claim], published={"@5": "xunit_fig4_9x9_share"}))
    (c,) = study.config.claims
    assert isinstance(c, exceeds_published) and c.point.value == 5 and c.published[0].value == 29.21
    assert isinstance(study.config.published, PublishedMap)
    assert study.config.published == {"@5": "xunit_fig4_9x9_share"}
    assert study.config.published.row("@5").unit == "% of parameters in activations"
    with pytest.raises(ConfigError) as err:
        load_study(write_study(tmp_path, claims=[{**claim, "point": "@9"}]))
    assert err.value.path == "claims[0].point" and "no point '@9'" in err.value.message


def test_published_map_resolves_rows_by_label_once():
    pm = PublishedMap({"@5": load_claim({**HEAD, "kind": "ordering", "order": ["A", "B"],
                                         "published": ["xunit_fig4_9x9_share"]}, "c").published[0]})
    assert dict(pm) == {"@5": "xunit_fig4_9x9_share"} and len(pm) == 1 and "@5" in pm
    by_label = pm.by_label([("xnet k=5", 5), ("convnet", 0), ("xnet k=5b", 5.0)])
    assert sorted(by_label) == ["xnet k=5", "xnet k=5b"] and by_label["xnet k=5"]["id"] == "xunit_fig4_9x9_share"
    # evaluate_claims takes the resolved map or a plain {point: row id} mapping, with the same result
    c = _load("ordering", order=["A", "B"])
    a = evaluate_claims([c], TINY, {"A": 5}, published_map=pm)[0]
    b = evaluate_claims([c], TINY, {"A": 5}, published_map={"@5": "xunit_fig4_9x9_share"})[0]
    assert a == b and a.points[0].published["id"] == "xunit_fig4_9x9_share"


def test_a_claim_with_nothing_to_compare_is_inconclusive_not_an_error():
    from archsearch.claims import evaluate_claims, load_claims

    claims = load_claims([{"id": "c", "source": "s", "text": "t", "kind": "extreme", "point": "a", "is": "best"}])
    (v,) = evaluate_claims(claims, {"a": {0: 20.0, 1: 20.1}}, {"a": None})
    assert v.verdict == "inconclusive" and "nothing to compare" in v.reason
