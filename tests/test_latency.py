"""Latency: the measurement protocol on tiny networks, and storing it on finished trials of a ledger."""

from __future__ import annotations

import optuna
import pytest
import torch

from archsearch import ArchsearchError, get_family
from archsearch.cli import main
from archsearch.latency import measure_latency
from archsearch.report import TITLES, ledger_frame
from archsearch.study import load_study
from archsearch.study.remeasure import stored_latency
from archsearch.testing.ledger import add_trial as add
from archsearch.testing.ledger import new_ledger
from archsearch.testing.studies import write_synthetic_study as write_study_file

FAST = {"size": (32, 32), "warmup": 1, "repeats": 3}


def test_measure_latency_of_a_spec():
    res = measure_latency(get_family("convnet")(depth=2, width=4), device="cpu", **FAST)
    assert res["ms_per_mp"] > 0 and res["median_ms"] >= res["min_ms"] > 0
    assert len(res["times_ms"]) == 3 and res["device"].startswith("cpu: ")
    assert res["output_size"] == [32, 32]
    assert res["ms_per_mp"] == pytest.approx(res["median_ms"] / (32 * 32 / 1e6))


def test_latency_is_per_output_megapixel_for_sr():
    spec = get_family("resnet")(n_blocks=1, channels=4, expansion=1, upscale=2)
    res = measure_latency(spec, device="cpu", **FAST)
    assert res["input_size"] == [32, 32] and res["output_size"] == [64, 64]


def test_module_without_spec_needs_in_channels_and_bad_counts_are_errors():
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    with pytest.raises(ArchsearchError, match="in_channels"):
        measure_latency(net, device="cpu", **FAST)
    assert measure_latency(net, device="cpu", in_channels=3, **FAST)["ms_per_mp"] > 0
    with pytest.raises(ArchsearchError, match="repeats >= 1"):
        measure_latency(net, device="cpu", in_channels=3, size=(8, 8), repeats=0)


def test_latency_is_stored_on_finished_trials(tmp_path, capsys):
    path = write_study_file(tmp_path)
    study = load_study(path)
    ostudy = new_ledger(study)
    specs = {}
    for name, kw in (("convnet", {"depth": 2, "width": 4}), ("xnet", {"depth": 2, "width": 4,
                                                                     "xunit_kernel_size": 3})):
        spec = get_family(name)(**kw)
        specs[name] = tmp_path / f"{name}.yaml"
        spec.save(specs[name])
    for seed in (0, 1):
        add(ostudy, design="convnet", psnr=27.0, seed=seed, n_params=100, spec_path=str(specs["convnet"]))
        add(ostudy, design="xnet", psnr=26.0, seed=seed, n_params=200, spec_path=str(specs["xnet"]),
            arguments={"xunit_kernel_size": 3}, label="xnet xunit_kernel_size=3")  # dominated by convnet
    args = ["--latency-size", "32x32", "--warmup", "1", "--repeats", "2", "--device", "cpu"]

    def reload():
        o = optuna.load_study(study_name=study.name, storage=study.storage_url)
        return o, stored_latency(o)

    hashes = {t.user_attrs["design"]: t.user_attrs["spec_hash"] for t in reload()[0].trials}
    assert main(["latency", str(path), "--pareto-only", *args]) == 0
    _, lat = reload()
    assert set(lat) == {hashes["convnet"]}  # only the Pareto candidate

    assert main(["latency", str(path), *args]) == 0
    o, lat = reload()
    assert set(lat) == set(hashes.values())  # one measurement per architecture, shared by its seeds
    for m in lat.values():
        assert m["latency_ms_per_mp"] > 0
        assert m["latency_device"].startswith("cpu: ") and m["latency_input"] == "32x32"
    for t in o.trials:
        assert t.state.name == "COMPLETE" and t.user_attrs["psnr"] in (26.0, 27.0)  # trials untouched
    df = ledger_frame(study)
    assert (df["latency_ms_per_mp"] > 0).all()  # every trial reads its architecture's measurement
    capsys.readouterr()
    assert main(["latency", str(path), *args]) == 0  # already measured: nothing to do
    assert "stored latency for 0 architecture(s)" in capsys.readouterr().out

    assert main(["report", str(path), "--no-png"]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert TITLES["pareto_latency"] in page.split("Not shown")[0]
