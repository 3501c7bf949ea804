"""The compact-denoiser study (Elad & Milanfar's talk): both profiles load and plan, and one smoke trial of a CSCNet design
trains and is scored end to end (a tiny design: few steps, small patches)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from archsearch import count
from archsearch.study import load_study
from archsearch.study.sweep import solve_design
from archsearch.study.trial import execute

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "compact_denoiser.yaml"
FAMILIES = {"convnet", "xnet", "nsr_resnet", "memnet", "cscnet", "deep_ksvd"}


@pytest.mark.parametrize("profile", [None, "paper", "smoke"])
def test_profiles_load_with_every_family(profile):
    study = load_study(STUDY, profile)
    # LIDIA's patch search is searched at paper scale only (a CPU trial of the proxy's schedule costs 30+ min)
    assert {d.family for d in study.space.designs} == (FAMILIES | {"lidia"} if profile == "paper" else FAMILIES)
    assert study.config.search.sampler == "nsga2" and study.config.search.objectives == ("psnr", "params")
    assert study.config.task["sigma"] == 25
    if profile == "paper":
        assert (study.config.data.train, study.config.data.test) == ("Train400", "BSD68")


@pytest.mark.parametrize("profile", [None, "paper"])
def test_every_search_choice_is_a_valid_design(profile):
    """The corners of every design's ranges build (no infeasible CSC stride/kernel pair, NSR groups divide)."""
    study = load_study(STUDY, profile)
    for design in study.space.designs:
        for pick in (min, max):
            args = {k: pick(r.choices) if r.choices is not None else int(pick(r.low, r.high))
                    for k, r in design.search.items()}
            spec = solve_design(study.config.budget, design, args)
            assert 1_000 < count(spec).params < 200_000, (design.name, args, count(spec).params)


def test_smoke_trial_of_a_cscnet_design_trains(tmp_path):
    study = load_study(STUDY, "smoke", output_dir=tmp_path / "out")
    attrs = execute(study, "cscnet", {"filters": 16, "unfoldings": 2, "kernel_size": 7, "stride": 2}, seed=0)
    assert attrs["design"] == "cscnet" and attrs["steps"] == 3
    assert attrs["n_params"] == 3 * 16 * 49 + 16
    assert math.isfinite(attrs["psnr"]) and study.output_path(attrs["checkpoint"]).exists()
