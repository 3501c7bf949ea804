"""Claims as data: the study schema (`claims:`, `published:`), the verdict rules on synthetic per-seed PSNR, the
t quantiles, and a tiny real study whose run, report and reproduction page carry the verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archsearch.study.schema import ConfigError, load_study
from test_study import TINY_TRAINING, write_study

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
    ([claim(kind="trnd")], None, "claims[0].kind", "must be one of ordering, gap, trend, plateau, extreme "
                                                  "(did you mean 'trend'?)"),
    ([{k: v for k, v in CLAIM.items() if k != "kind"}], None, "claims[0].kind", "is required"),
    ([claim(order=["@1", "@5"])], None, "claims[0].order", "unknown key for kind extreme (a field of kind ordering)"),
    ([claim(colour="red")], None, "claims[0].colour", "allowed: id, source, text, kind, published, point, is, among"),
    ([claim(kind="gap", a="@1", b="convnet")], None, "claims[0]",
     "kind gap needs exactly one of within, at_least, at_most, got none"),
    ([claim(kind="gap", a="@1", b="convnet", within=0.1, at_most=1)], None, "claims[0]",
     "exactly one of within, at_least, at_most, got within, at_most"),
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
