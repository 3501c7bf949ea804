"""The study's seed noise in its reports: the pooled paired sd every claim's sd is floored at (issue 19, "measure
each study's paired sd"), printed by `archsearch report`, on the HTML page and on the reproduction page -- on a
synthetic ledger whose answer is worked out by hand."""

from __future__ import annotations

import math

import pytest

from archsearch.cli import main
from archsearch.report.reproduction import study_section
from archsearch.report.verdicts import seed_noise
from archsearch.study import load_study
from archsearch.study.results import ledger_frame
from archsearch.testing.ledger import add_trial as add
from archsearch.testing.ledger import new_ledger
from archsearch.testing.studies import write_synthetic_study

# per-seed test PSNR of three design points; "c" has one seed only (pairs with nothing)
PSNR = {"a": {0: 28.0, 1: 28.2, 2: 28.1}, "b": {0: 28.5, 1: 28.5, 2: 28.8}, "c": {0: 29.0}}


def _study(tmp_path):
    path = write_synthetic_study(tmp_path)
    study = load_study(path)
    ostudy = new_ledger(study)
    for label, seeds in PSNR.items():
        for seed, psnr in seeds.items():
            add(ostudy, design="convnet", label=label, psnr=psnr, seed=seed)
    return path, study, ostudy


def test_the_pooled_paired_sd_is_reported_everywhere(tmp_path, capsys):
    path, study, ostudy = _study(tmp_path)
    # b - a per seed: 0.5, 0.3, 0.7 -> sd 0.2 on 2 df; "c" shares 1 seed with each: no pair
    noise = seed_noise(ledger_frame(study, ostudy))
    assert noise.sd == pytest.approx(0.2) and noise.dof == 2 and noise.pairs == 1
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "seed noise: pooled paired sd 0.2000 dB (2 df over 1 pairs" in out
    assert "seed noise: pooled paired sd 0.2000 dB" in (tmp_path / "out" / "report.html").read_text()
    assert "Pooled paired sd: 0.200 dB (2 df over 1 pairs of points" in study_section(path, None)


def test_no_seed_noise_without_a_pair_or_with_image_replicates(tmp_path):
    path, study, ostudy = _study(tmp_path)
    df = ledger_frame(study, ostudy)
    assert seed_noise(df, "images") is None  # the images are the replicates: no seed pairs to pool
    one = df[df["seed"] == 0]
    assert seed_noise(one) is None and math.isfinite(seed_noise(df).sd)
