"""Published checkpoints as trials (a design with ``weights``): evaluated through the one loader, never trained,
recorded with the file's sha256 and marked "published" in the tables; a wrong digest or a missing data root is
one line before anything is written; ``replicates: images`` pairs the claims over the test images; ``sweep:
{over: designs}``; the ``size`` claim kind; the ``dncnn`` test protocol in a study."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import yaml

from archsearch.cli import main
from archsearch.errors import SpecError
from archsearch.study import load_study
from archsearch.study.space import Design

TINY = {"depth": 2, "width": 4}


def _weights(path, seed: int) -> str:
    from archsearch import get_family
    from archsearch.builder import build

    torch.manual_seed(seed)
    torch.save(build(get_family("convnet")(**TINY)).state_dict(), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _study(tmp_path, designs, **extra):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({"name": "pub", "designs": designs}, sort_keys=False))
    body = {"name": "pub", "search_space": "space.yaml", "task": {"name": "denoise", "sigma": 25},
            # the embedded training split as the test set: 7 images, 7 replicates
            "data": {"train": "default", "val": "default:val", "test": "default:train"},
            "sweep": {"over": "designs"}, "seeds": [0], "latency": {"enabled": False},
            "executor": {"workers": 1}, "output_dir": str(tmp_path / "out"), **extra}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


CLAIMS = [
    {"id": "same", "source": "s", "text": "the same weights score the same", "kind": "gap", "a": "a", "b": "a_copy",
     "within": 0.05},
    {"id": "sizes", "source": "s", "text": "about 75 parameters", "kind": "size", "sizes": {"a": 75}},
]


@pytest.fixture
def published(tmp_path, monkeypatch):
    """Two published designs with one weights file (the second under the data root, relative), a third with its
    own; random weights score near the noisy input, so the validity gate is set aside (in this process)."""
    import archsearch.study.trial as trial_module

    monkeypatch.setattr(trial_module, "classify", lambda psnr, baseline_psnr: "ok")
    root = tmp_path / "data_root"
    (root / "weights").mkdir(parents=True)
    digest = _weights(root / "weights" / "a.pt", 0)
    _weights(root / "weights" / "b.pt", 1)
    monkeypatch.setenv("ARCHSEARCH_DATA_ROOT", str(root))
    designs = [{"name": "a", "family": "convnet", "fixed": TINY, "weights": str(root / "weights" / "a.pt"),
                "sha256": digest},
               {"name": "a_copy", "family": "convnet", "fixed": TINY, "weights": "weights/a.pt"},
               {"name": "b", "family": "convnet", "fixed": TINY, "weights": "weights/b.pt"}]
    return designs, digest


def test_published_designs_are_evaluated_not_trained_and_pair_over_images(tmp_path, capsys, published):
    designs, digest = published
    path = _study(tmp_path, designs, replicates="images", claims=CLAIMS)
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "weights" in out and "published" in out  # the summary table marks them
    same = next(line for line in out.splitlines() if line.startswith("claim same:"))
    # identical weights: every image's difference is exactly 0 -> the equivalence holds over the 7 images
    assert same.startswith("claim same: holds") and "7 images" in same
    assert "paper scale: the authors' published weights" in same
    sizes = next(line for line in out.splitlines() if line.startswith("claim sizes:"))
    # 76: the count from the spec (convnet depth 2, width 4; what `archsearch inspect` prints)
    assert sizes.startswith("claim sizes: holds") and "a 76 vs 75 stated (+1.3%)" in sizes

    import optuna

    trials = optuna.load_study(study_name="pub", storage=f"sqlite:///{tmp_path / 'out' / 'ledger.db'}").trials
    by = {t.user_attrs["design"]: t.user_attrs for t in trials}
    assert set(by) == {"a", "a_copy", "b"}
    for ua in by.values():
        assert ua["steps"] == 0 and ua["train_time_s"] == 0.0 and ua["val_psnr"] is None
        assert len(ua["per_image_per_seed"][0]) == 7
    assert by["a"]["weights_sha256"] == by["a_copy"]["weights_sha256"] == digest
    assert by["b"]["weights_sha256"] != digest and by["a_copy"]["published_weights"].endswith("a.pt")
    assert by["a"]["psnr"] == by["a_copy"]["psnr"] != by["b"]["psnr"]
    data = json.loads((tmp_path / "out" / "claims.json").read_text())
    claim = next(c for c in data["claims"] if c["claim_id"] == "same")
    assert claim["replicate"] == "image" and claim["n_seeds"] == 7 and "test images" in claim["method"]
    summary = (tmp_path / "out" / "summary.csv").read_text()
    assert "weights" in summary.splitlines()[0] and summary.count("published") == 3
    results = (tmp_path / "out" / "results.csv").read_text()
    assert digest in results  # the digest is in the table a user opens

    # without `replicates: images` the one seed decides nothing: the switch is what makes the images count
    capsys.readouterr()
    assert main(["report", str(path.parent / "study2.yaml")]) == 2  # (no such file: one line)
    body = yaml.safe_load(path.read_text())
    body.pop("replicates")
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    assert main(["report", str(path), "--no-png"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("claim same:"))
    assert line.startswith("claim same: inconclusive") and "needs ≥ 3 seeds" in line


def test_a_wrong_digest_or_no_data_root_is_one_line_and_writes_nothing(tmp_path, capsys, published, monkeypatch):
    designs, digest = published
    bad = [dict(designs[0], sha256="0" * 64), *designs[1:]]
    path = _study(tmp_path, bad)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "space.yaml" in err and "designs[0].weights" in err
    assert "not the published file" in err and not (tmp_path / "out").exists()
    monkeypatch.delenv("ARCHSEARCH_DATA_ROOT")
    path = _study(tmp_path, designs)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "designs[1].weights" in err and "ARCHSEARCH_DATA_ROOT" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("fields, path, message", [
    ({"family": "convnet", "free_knob": "width", "weights": "w.pt"}, "weights", "no `free_knob`"),
    ({"zoo": "dncnn_s", "fixed": {"depth": 3}}, "fixed", "fixes every argument"),
    ({"zoo": "dncnn_s", "family": "xnet"}, "family", "of family 'convnet'"),
    ({"zoo": "no_such_model"}, "zoo", "no_such_model"),
    ({"family": "convnet", "weights": "w.pt", "sha256": "abc"}, "sha256", "64 lowercase hex"),
    ({"family": "convnet", "sha256": "0" * 64}, "sha256", "give `weights` too"),
    ({}, "family", "or a `zoo` model"),
])
def test_design_fields_are_checked(fields, path, message):
    with pytest.raises(SpecError) as err:
        Design(name="d", **fields)
    assert err.value.path == path and message in err.value.message


def test_a_zoo_design_is_its_family_call_and_old_designs_keep_their_repr():
    d = Design(name="x", zoo="lidia_s", weights="../pretrained/lidia_s_sigma25_gray.pt")
    assert (d.family, dict(d.fixed), d.published, d.sweeps("small")) == ("lidia", {"small": True}, True, False)
    # zoo/weights/sha256 stay out of repr: a study written before them keeps its config fingerprint
    assert repr(Design(name="c", family="convnet", fixed=TINY)) == \
        "Design(name='c', family='convnet', fixed={'depth': 2, 'width': 4}, free_knob=None, search={})"


@pytest.mark.parametrize("extra, key, message", [
    ({"sweep": {"over": "designs", "values": [1]}}, "values", "runs each design once"),
    ({"replicates": "images", "seeds": [0, 1]}, "replicates", "one seed"),
    ({"data": {"test": "default:train", "protocol": "dncnn", "test_draws": 3}}, "test_draws", "one fixed noise draw"),
])
def test_study_fields_for_published_checkpoints_are_checked(tmp_path, published, extra, key, message):
    from archsearch.errors import ConfigError

    designs, _ = published
    with pytest.raises(ConfigError) as err:
        load_study(_study(tmp_path, designs, **extra))
    assert key in err.value.path and message in err.value.message


def test_size_claim_is_contradicted_beyond_its_tolerance():
    from archsearch.claims import evaluate_claims
    from archsearch.claims.claim import load_claims

    claims = load_claims([{"id": "s", "source": "s", "text": "60K instead of 550K", "kind": "size",
                           "sizes": {"a": 60000, "b": 550000}, "tolerance": 0.02}])
    sizes = {"a": {"n_params": 61589}, "b": {"n_params": 556096}}
    v = evaluate_claims(claims, {"a": {0: 30.0}, "b": {0: 30.1}}, {"a": None, "b": None}, sizes=sizes)[0]
    assert v.verdict == "contradicted" and "a off by more than 2%" in v.reason and "ratio a/b 0.111" in v.reason
    assert v.p_adjusted != v.p_adjusted  # a count is not a test: outside Holm's correction (NaN)
    claims = load_claims([{"id": "s", "source": "s", "text": "t", "kind": "size", "sizes": {"a": 60000}}])
    assert evaluate_claims(claims, {"a": {0: 30.0}}, {"a": None}, sizes=sizes)[0].verdict == "holds"  # 5%


def test_dncnn_protocol_in_a_study_scores_like_the_cli(tmp_path, capsys, published):
    """``data.protocol: dncnn`` scores trials (and the baseline) as ``archsearch evaluate --protocol dncnn``."""
    designs, _ = published
    path = _study(tmp_path, designs[:1], data={"train": "default", "val": "default:val", "test": "default:val",
                                                "protocol": "dncnn"})
    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    import optuna

    ua = optuna.load_study(study_name="pub", storage=f"sqlite:///{tmp_path / 'out' / 'ledger.db'}").trials[0].user_attrs
    assert ua["test_protocol"] == "dncnn"
    spec = tmp_path / "spec.yaml"
    from archsearch import get_family

    get_family("convnet")(**TINY).save(spec)
    assert main(["evaluate", "--spec", str(spec), "--weights", designs[0]["weights"], "--task", "denoise",
                 "--sigma", "25", "--dataset", "default:val", "--protocol", "dncnn", "--format", "json"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["psnr"] - ua["psnr"]) < 1e-9
