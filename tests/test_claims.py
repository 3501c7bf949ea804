"""Claims as data: the study schema (`claims:`, `published:`), the verdict rules on synthetic per-seed PSNR, the
t quantiles, and a tiny real study whose run, report and reproduction page carry the verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archsearch.errors import ConfigError
from archsearch.study import load_study
from archsearch.testing.studies import TINY_TRAINING, write_study

CLAIM = {"id": "c1", "source": "xUnit (CVPR 2018) Fig. 4", "text": "0% is clearly worst", "kind": "extreme",
         "point": "convnet", "is": "worst"}


def claim(**kw):
    """A claim: the extreme one above, or with ``kind`` given, the common fields and ``kw`` (``is_`` -> ``is``)."""
    base = dict(CLAIM) if kw.get("kind", "extreme") == "extreme" else {k: CLAIM[k] for k in ("id", "source", "text")}
    out = {**base, **{("is" if k == "is_" else k): v for k, v in kw.items()}}
    return {k: v for k, v in out.items() if v is not None}


# ---------------------------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------------------------
def test_claims_and_published_load(tmp_path):
    claims = [claim(),
              claim(id="c2", kind="ordering", order=["@5", "@1", "convnet"], published=[
                  "xunit_fig4_convnet_share"]),
              claim(id="c3", kind="gap", a="xnet xunit_kernel_size=1", b="convnet", within=0.05),
              claim(id="c4", kind="trend", points=["@1", "@5"], direction="increasing"),
              claim(id="c5", kind="plateau", points=["@1", "@5"], tolerance=0.1),
              claim(id="c6", is_="best", among=["@1", "@5"])]
    study = load_study(write_study(tmp_path, claims=claims, published={"convnet": "xunit_fig4_convnet_share",
                                                                       "@5": "xunit_fig4_9x9_share"}))
    c = study.config.claims
    assert [x.id for x in c] == ["c1", "c2", "c3", "c4", "c5", "c6"]
    assert c[1].order[0].value == 5 and c[1].order[0].by_value and c[1].order[2].label == "convnet"
    assert c[2].within == 0.05 and c[3].direction == "increasing" and c[4].tolerance == 0.1
    assert c[0].extreme == "worst" and study.config.published["@5"] == "xunit_fig4_9x9_share"


@pytest.mark.parametrize("claims,published,path,message", [
    ([claim(kind="trnd")], None, "claims[0].kind", "must be one of ordering, gap, trend, plateau, extreme, "
                                                  "contrast, failures, size (did you mean 'trend'?)"),
    ([{k: v for k, v in CLAIM.items() if k != "kind"}], None, "claims[0].kind", "is required"),
    ([claim(order=["@1", "@5"])], None, "claims[0].order", "unknown key for kind extreme (a field of kind ordering)"),
    ([claim(colour="red")], None, "claims[0].colour", "allowed: id, source, text, kind, published, tested, untested, evidence, point, is, among"),
    ([claim(kind="gap", a="@1", b="convnet")], None, "claims[0]",
     "kind gap needs exactly one of within, at_least, at_most, not_worse_by, about, got none"),
    ([claim(kind="gap", a="@1", b="convnet", within=0.1, at_most=1)], None, "claims[0]",
     "exactly one of within, at_least, at_most, not_worse_by, about, got within, at_most"),
    ([claim(kind="gap", a="@1", b="convnet", within=-0.1)], None, "claims[0].within",
     "must be a finite number of dB > 0"),
    ([claim(kind="plateau", points=["@1", "@5"], tolerance=True)], None, "claims[0].tolerance",
     "must be a finite number of dB > 0"),
    ([claim(kind="trend", points=["@1", "@5"], direction="up")], None, "claims[0].direction",
     "must be one of increasing, decreasing"),
    ([claim(kind="trend", points=["@1"], direction="increasing")], None, "claims[0].points",
     "at least 2 points"),
    ([claim(kind="ordering", order=["@1", "@1"])], None, "claims[0].order[1]", "repeats the point"),
    ([claim(is_="worstest")], None, "claims[0].is", "must be one of worst, best"),
    ([claim(id="a b")], None, "claims[0].id", "must be a name of"),
    ([claim(), claim()], None, "claims[1].id", "repeats the claim id 'c1'"),
    ([claim(source="")], None, "claims[0].source", "non-empty string"),
    ([claim(point=5)], None, "claims[0].point", "\"@VALUE\" (quoted"),
    ([claim(point="@9")], None, "claims[0].point", "no point '@9' in the study's sweep; sweep values: @1, @5"),
    ([claim(point="xnet xunit_kernel_size=9")], None, "claims[0].point",
     "points: convnet, xnet xunit_kernel_size=1, xnet xunit_kernel_size=5"),
    ([claim(published=["xunit_t1_s25_dncnn"])], None, "claims[0].published[0]",
     "no published row 'xunit_t1_s25_dncnn' (did you mean"),
    ({"id": "c1"}, None, "claims", "must be a list of claims"),
    ([], {"convnet": "nope"}, "published.convnet", "no published row 'nope'"),
    ([], {"@3": "xunit_fig4_9x9_share"}, "published.@3", "no point '@3'"),
    ([], ["convnet"], "published", "must be a mapping"),
])
def test_claim_errors_name_file_key_and_rule(tmp_path, claims, published, path, message):
    kw = {"claims": claims}
    if published is not None:
        kw["published"] = published
    file = write_study(tmp_path, **kw)
    with pytest.raises(ConfigError) as err:
        load_study(file)
    assert err.value.path == path and str(file) in str(err.value) and message in err.value.message, str(err.value)


def test_profile_claims_checked_against_their_own_sweep(tmp_path):
    # inherited claims are checked against the default sweep: a smoke profile without @5 still loads
    profiles = {"smoke": {"sweep": {"values": [1]}}}
    study = load_study(write_study(tmp_path, claims=[claim(point="@5")], profiles=profiles), "smoke")
    assert study.config.claims[0].point.text == "@5"
    # a profile's own claims against the profile's sweep
    profiles = {"smoke": {"sweep": {"values": [1]}, "claims": [claim(point="@5")]}}
    with pytest.raises(ConfigError) as err:
        load_study(write_study(tmp_path, profiles=profiles), "smoke")
    assert err.value.path == "claims[0].point (profile 'smoke')"
    assert "no point '@5' in the sweep of profile 'smoke'" in err.value.message
    # a profile may drop the claims
    profiles = {"smoke": {"claims": [], "published": {}}}
    study = load_study(write_study(tmp_path, claims=[claim()], profiles=profiles), "smoke")
    assert study.config.claims == ()


def test_search_study_refuses_sweep_values(tmp_path):
    search = {"sampler": "random", "n_trials": 2}
    with pytest.raises(ConfigError) as err:
        load_study(write_study(tmp_path, sweep=None, search=search, claims=[claim(point="@5")]))
    assert "a search has no sweep values" in err.value.message
    study = load_study(write_study(tmp_path, sweep=None, search=search, claims=[claim(point="xnet anything")]))
    assert study.config.claims[0].point.label == "xnet anything"


def test_shipped_xunit_budget_claims_load():
    root = Path(__file__).resolve().parents[1]
    for profile in ("default", "paper", "smoke"):
        study = load_study(root / "studies" / "xunit_budget.yaml", profile)
        ids = [c.id for c in study.config.claims]
        assert "fig4_zero_worst" in ids and len(ids) == len(set(ids))
    assert json.dumps(ids)


# ---------------------------------------------------------------------------------------------------------
# t quantiles and the verdict rules on synthetic per-seed PSNR
# ---------------------------------------------------------------------------------------------------------
def test_t_quantiles_match_tables():
    from archsearch.claims import t_interval, t_quantile

    for df, q in [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (29, 2.045), (1000, 1.962)]:
        assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-3)
    mean, lo, hi, n = t_interval([1.0, 2.0, 3.0])  # sd 1, n 3: half-width 4.303 / sqrt(3)
    assert (mean, n) == (2.0, 3) and hi - mean == pytest.approx(4.303 / 3 ** 0.5, abs=1e-3) and lo < mean
    assert t_interval([5.0])[1] != t_interval([5.0])[1]  # NaN: no interval from one seed


def _claim(**kw):
    from archsearch.claims import load_claim

    return load_claim(claim(**kw), "claims[0]")


def _verdict(c, per_seed, values=None):
    from archsearch.claims import evaluate_claims

    return evaluate_claims([c], per_seed, values or {}, scale="proxy", profile="default")[0]


# three points A > B > C by ~1 dB, seeds 0-3, small seed noise (the same seed shifts every point alike)
SEEDS = [0, 1, 2, 3]
NOISE = [0.0, 0.3, -0.2, 0.1]
CLEAR = {"A": {s: 30 + e + 0.01 * s for s, e in zip(SEEDS, NOISE)},
         "B": {s: 29 + e for s, e in zip(SEEDS, NOISE)},
         "C": {s: 28 + e - 0.01 * s for s, e in zip(SEEDS, NOISE)}}
# B and C indistinguishable: differences straddle 0
MIXED = {"B": {0: 29.0, 1: 29.2, 2: 28.9, 3: 29.1}, "C": {0: 29.1, 1: 29.0, 2: 29.0, 3: 29.0}}


@pytest.mark.parametrize("kw,data,expected", [
    (dict(kind="ordering", order=["A", "B", "C"]), CLEAR, "holds"),
    (dict(kind="ordering", order=["C", "B", "A"]), CLEAR, "contradicted"),
    (dict(kind="ordering", order=["B", "C"]), MIXED, "inconclusive"),
    (dict(kind="gap", a="A", b="B", at_least=0.5), CLEAR, "holds"),
    (dict(kind="gap", a="A", b="B", at_least=2.0), CLEAR, "contradicted"),
    (dict(kind="gap", a="A", b="B", at_most=2.0), CLEAR, "holds"),
    (dict(kind="gap", a="A", b="B", at_most=0.5), CLEAR, "contradicted"),
    (dict(kind="gap", a="A", b="B", within=0.1), CLEAR, "contradicted"),
    (dict(kind="gap", a="B", b="C", within=1.0), MIXED, "holds"),
    (dict(kind="gap", a="B", b="C", within=0.05), MIXED, "inconclusive"),
    (dict(kind="trend", points=["C", "B", "A"], direction="increasing"), CLEAR, "holds"),
    (dict(kind="trend", points=["C", "B", "A"], direction="decreasing"), CLEAR, "contradicted"),
    (dict(kind="trend", points=["B", "C"], direction="increasing"), MIXED, "inconclusive"),
    (dict(kind="plateau", points=["B", "C"], tolerance=1.0), MIXED, "holds"),
    (dict(kind="plateau", points=["A", "B", "C"], tolerance=0.2), CLEAR, "contradicted"),
    (dict(kind="plateau", points=["B", "C"], tolerance=0.05), MIXED, "inconclusive"),
    (dict(kind="extreme", point="C", is_="worst"), CLEAR, "holds"),
    (dict(kind="extreme", point="A", is_="best", among=["B", "C"]), CLEAR, "holds"),
    (dict(kind="extreme", point="B", is_="worst"), CLEAR, "contradicted"),
    (dict(kind="extreme", point="B", is_="worst"), MIXED, "inconclusive"),
])
def test_verdict_rules(kw, data, expected):
    v = _verdict(_claim(**kw), data)
    assert v.verdict == expected, (v.line(), [(c.name, c.estimate, c.low, c.high, c.outcome) for c in v.comparisons])
    assert v.n_seeds == 4 and v.scale_note.startswith("CPU-scale proxy")
    assert f"claim c1: {expected} (" in v.line() and "4 seeds" in v.line()


def test_one_seed_is_inconclusive_and_says_why():
    data = {k: {0: v[0]} for k, v in CLEAR.items()}
    for kw in (dict(kind="ordering", order=["A", "B"]), dict(kind="trend", points=["C", "B", "A"],
                                                              direction="increasing"),
               dict(kind="extreme", point="C", is_="worst")):
        v = _verdict(_claim(**kw), data)
        assert v.verdict == "inconclusive" and "needs ≥ 3 seeds" in v.reason and "(has 1)" in v.reason, v.line()
    # only the seeds both points share count
    v = _verdict(_claim(kind="ordering", order=["A", "B"]), {"A": {0: 30.0, 1: 30.1}, "B": {1: 29.0, 2: 29.1}})
    assert v.verdict == "inconclusive" and v.n_seeds == 1


def test_missing_point_and_sweep_values():
    v = _verdict(_claim(kind="ordering", order=["A", "Z"]), CLEAR)
    assert v.verdict == "inconclusive" and "no complete trial of point Z" in v.reason
    # "@VALUE" resolves through the sweep values; a trend uses them as x
    values = {"A": 15, "B": 5, "C": 0}
    v = _verdict(_claim(kind="trend", points=["@0", "@5", "@15"], direction="increasing"), CLEAR, values)
    assert v.verdict == "holds" and v.unit == "dB per unit of sweep value" and "sweep value" in v.method
    assert v.comparisons[0].estimate == pytest.approx(2 / 15, rel=0.05)
    assert [p.label for p in v.points] == ["C", "B", "A"]


def test_paper_profile_is_a_reproduction():
    from archsearch.claims import evaluate_claims

    c = _claim(kind="ordering", order=["A", "B"], published=["xunit_t1_s25_xdncnn"])
    v = evaluate_claims([c], CLEAR, {}, published_map={"A": "xunit_t1_s25_dncnn_s"}, profile="paper")[0]
    assert v.reproduction and "paper scale" in v.line()
    assert v.published[0]["value"] == 29.21 and v.points[0].published["value"] == 29.22
    assert "published 29.22 dB" in v.measured_text() and v.as_dict()["claim_id"] == "c1"


# ---------------------------------------------------------------------------------------------------------
# a tiny real study: run, report, reproduction page
# ---------------------------------------------------------------------------------------------------------
def test_tiny_study_run_report_and_reproduction_page(tmp_path, capsys, monkeypatch):
    import archsearch.study.trial as trial_module
    from archsearch.cli import main

    # two training steps leave models no better than the noisy input (degenerate: archsearch.study.validity); this
    # test reads the verdict lines of valid seeds, so the gate passes every seed (in this process: one worker)
    monkeypatch.setattr(trial_module, "classify", lambda psnr, baseline_psnr: "ok")
    claims = [claim(id="zero_worst"),
              claim(id="rises", kind="trend", points=["@1", "@5"], direction="increasing",
                    published=["xunit_fig4_9x9_share"]),
              claim(id="minor_gap", kind="gap", a="@1", b="convnet", at_least=0)]
    path = write_study(tmp_path, seeds=[0, 1], claims=claims, published={"@5": "xunit_t1_s25_xdncnn"},
                       training={**TINY_TRAINING, "steps": 2}, executor={"workers": 1},
                       profiles={"paper": {"output_dir": str(tmp_path / "paper_out"), "seeds": [0]}})
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("claim ")]
    assert [ln.split(":")[0] for ln in lines] == ["claim zero_worst", "claim rises", "claim minor_gap"], out
    assert all(any(f": {v} (" in ln for v in ("holds", "contradicted", "inconclusive")) for ln in lines)
    assert all("2 seeds" in ln and "CPU-scale proxy; published numbers shown for reference" in ln for ln in lines)
    run_dir = tmp_path / "out"
    assert (run_dir / "claims.csv").exists() and (run_dir / "claims.json").exists()

    assert main(["report", str(path), "--no-png"]) == 0
    out = capsys.readouterr().out
    assert sum(ln.startswith("claim ") for ln in out.splitlines()) == 3
    page = (run_dir / "report.html").read_text()
    assert "<h2>Claims (3)</h2>" in page and "zero_worst" in page and "95% CI" in page
    assert "~15 % of parameters in activations" in page  # the published row behind the trend claim
    assert "29.21 dB (xUnit (CVPR 2018) Table 1)" in page  # published beside the measured point @5
    data = json.loads((run_dir / "claims.json").read_text())
    assert [c["claim_id"] for c in data["claims"]] == ["zero_worst", "rises", "minor_gap"]
    assert data["claims"][0]["n_seeds"] == 2 and "Student-t" in data["method"]

    # the reproduction page: this study, and one never run ("not run at this profile")
    other = write_study(tmp_path, name="never", output_dir=str(tmp_path / "never_out"))
    doc = tmp_path / "docs" / "reproduction.md"
    assert main(["report", "--reproduction", str(doc), str(path), str(other)]) == 0
    text = doc.read_text()
    assert text.startswith("# Reproduction status") and "Generated by `archsearch report --reproduction" in text
    assert "## tiny (" in text and "| `zero_worst`: 0% is clearly worst |" in text
    from archsearch.study.layout import machine_name

    assert f"Machine: {machine_name()}, cpu." in text and "run record missing" not in text  # the ledger's `runs`
    assert "## never (" in text and "Not run at this profile (default): no ledger." in text
    assert "## tiny-paper (" not in text  # its paper profile has no ledger yet: not shown
    assert main(["run", str(path), "--profile", "paper"]) == 0
    assert main(["report", "--reproduction", str(doc), str(path)]) == 0
    text = doc.read_text()
    assert "## tiny (" in text and "## tiny-paper (" in text  # a paper-scale run is shown whenever it exists
    assert "Student-t" in text and "CPU-scale proxy" in text
    # several profiles: a section per study and profile; a profile the file lacks says so
    assert main(["report", "--reproduction", str(doc), str(path), "--profile", "default,nosuch"]) == 0
    text = doc.read_text()
    assert "## tiny (" in text and "No profile `nosuch` in this study file." in text
    assert "--profile default,nosuch" in text  # the command that made it
    assert main(["report", "--reproduction", str(doc), str(path), "--profile", "default,,x"]) == 2
    assert "comma-separated" in capsys.readouterr().err

    # one study at a time without --reproduction
    assert main(["report", str(path), str(other)]) == 2
    assert "one study at a time" in capsys.readouterr().err


def test_run_record_prefers_the_runs_attribute():
    import pandas as pd

    from archsearch.report.reproduction import run_record

    class Ledger:
        user_attrs = {"runs": [{"wall_s": 100.0, "machine": "old"}, {"wall_s": 50.5, "machine": "AMD EPYC, 2 cores",
                                                                      "device": "cpu", "finished": "2025-01-01"}]}

    rec = run_record(Ledger(), pd.DataFrame({"state": [], "wall_time_s": [], "host": []}))
    assert rec["wall_s"] == 150.5 and rec["machine"] == "AMD EPYC, 2 cores, cpu" and "2 runs" in rec["wall"]


def test_seeds_for_power_is_the_smallest_n_with_80_percent_power():
    """The smallest n with (t(0.975, n-1) + t(0.8, n-1)) * sd / sqrt(n) <= the distance to decide; none beyond 100
    seeds (the difference is too small to resolve at this profile) or for a non-positive distance."""
    from scipy import stats

    from archsearch.claims.stats import seeds_for_power

    sd, est = 0.2, 0.1

    def width(m):
        return (stats.t.ppf(0.975, m - 1) + stats.t.ppf(0.8, m - 1)) * sd / m ** 0.5

    m = seeds_for_power(sd, est)
    assert width(m) <= est < width(m - 1)
    assert seeds_for_power(sd, 1e-4) is None and seeds_for_power(sd, 0.0) is None and seeds_for_power(sd, -1) is None


def test_paper_scale_line_counts_training_macs():
    from archsearch import load_study
    from archsearch.report.reproduction import TRAIN_MAC_FACTOR, paper_scale
    from archsearch.study.plan import plan_study

    path = Path(__file__).resolve().parents[1] / "studies" / "xunit_table1.yaml"
    line = paper_scale(path)
    study = load_study(path, "paper")
    plan = plan_study(study, timed_steps=0)
    t = dict(study.config.training)
    macs = sum(len(p.seeds) * t["steps"] * t["batch_size"] * t["patch_size"] ** 2 * p.macs_per_pixel
               * TRAIN_MAC_FACTOR for p in plan.points)
    assert f"{plan.n_trials} trials of {t['steps']:,} steps" in line and f"{macs / 1e15:,.1f} PMACs" in line
