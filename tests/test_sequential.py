"""Sequential seeding (``sequential:``): the study file's rules, the spending levels, claims decided look by look
on a synthetic ledger (a claim keeps the verdict of the first look that decided it), the cost of each stage, and
real tiny runs that stop after the first stage when no claim can gain from more seeds, or go on to the next."""

from __future__ import annotations

import math

import pytest

from archsearch.claims.stats import ALPHA, spent, stage_levels
from archsearch.errors import ConfigError
from archsearch.study import load_study
from archsearch.testing.studies import write_study

HEAD = {"source": "a paper", "text": "a claim"}
R1, R5 = "xnet xunit_kernel_size=1", "xnet xunit_kernel_size=5"


def test_spending_levels_sum_to_alpha():
    for kind in ("pocock", "obrien_fleming"):
        levels = stage_levels([3, 5, 10], kind)
        assert sum(levels) == pytest.approx(ALPHA) and all(0 < x < ALPHA for x in levels)
        assert spent(1.0, kind) == pytest.approx(ALPHA) and spent(0, kind) == 0
    # O'Brien-Fleming spends almost nothing at the first look; Pocock spends evenly
    assert stage_levels([3, 5, 10], "obrien_fleming")[0] < 1e-4 < stage_levels([3, 5, 10], "pocock")[0]
    assert spent(0.5, "pocock") == pytest.approx(ALPHA * math.log(1 + (math.e - 1) / 2))


@pytest.mark.parametrize("overrides,path,message", [
    (dict(seeds=[0, 1, 2], sequential={"stages": [3, 5]}), "sequential.stages", "`seeds` lists 3"),
    (dict(seeds=[0, 1, 2, 3, 4], sequential={"stages": [2, 5]}), "sequential.stages[0]", "must be at least 3"),
    (dict(seeds=[0, 1, 2, 3, 4], sequential={"stages": [3, 3]}), "sequential.stages[1]", "must exceed the stage"),
    (dict(seeds=[0, 1, 2, 3, 4], sequential={"stages": [3, 5], "spending": "linear"}), "sequential.spending",
     "must be one of 'pocock', 'obrien_fleming'"),
    (dict(seeds=[0, 1, 2, 3, 4], sequential={"stages": [3, 5]}, sweep=None,
          search={"sampler": "random", "n_trials": 2}), "sequential", "needs a `sweep`"),
])
def test_sequential_settings_are_checked_at_load(tmp_path, overrides, path, message):
    with pytest.raises(ConfigError) as err:
        load_study(write_study(tmp_path, **overrides))
    assert err.value.path == path and message in err.value.message, str(err.value)


@pytest.fixture
def staged(tmp_path):
    """Stages of 3 and 5 seeds: r5 beats r1 by 1 dB on seeds 0-2 (a clear decision at the first look) but the
    seeds 3-4 muddle it; a second claim (r1 vs convnet) needs all five seeds."""
    from optuna.trial import TrialState  # noqa: F401  (the ledger kit's states)

    from archsearch.testing.ledger import add_trial, new_ledger

    claims = [{**HEAD, "id": "r5_beats_r1", "kind": "ordering", "order": [R5, R1]},
              {**HEAD, "id": "r1_beats_convnet", "kind": "ordering", "order": [R1, "convnet"]}]
    study = load_study(write_study(tmp_path, seeds=[0, 1, 2, 3, 4], sequential={"stages": [3, 5]}, claims=claims,
                                   sweep={"over": "xunit_kernel_size", "values": [1, 5]}))
    ostudy = new_ledger(study)
    r5_gap = [1.0, 1.001, 0.999, -2.0, 3.0]
    r1_gap = [0.2, 0.5, 0.1, 0.4, 0.3]
    for seed in range(5):
        base = 27.0 + 0.3 * seed
        add_trial(ostudy, design="convnet", psnr=base, seed=seed, label="convnet", macs=2900.0,
                  wall_time_s=10.0, train_time_s=8.0)
        add_trial(ostudy, design="xnet", psnr=base + r1_gap[seed], seed=seed, label=R1, sweep_value=1,
                  arguments={"xunit_kernel_size": 1}, wall_time_s=10.0, train_time_s=8.0)
        add_trial(ostudy, design="xnet", psnr=base + r1_gap[seed] + r5_gap[seed], seed=seed, label=R5,
                  sweep_value=5, arguments={"xunit_kernel_size": 5}, wall_time_s=10.0, train_time_s=8.0)
    return study


def test_a_claim_keeps_the_verdict_of_the_look_that_decided_it(staged):
    from archsearch.report.verdicts import ledger_points, stages_reached, study_verdicts
    from archsearch.study.results import ledger_frame

    assert stages_reached(staged, ledger_points(ledger_frame(staged))) == 2
    r5, r1 = study_verdicts(staged)
    levels = stage_levels([3, 5], "pocock")
    # decided at the first look on seeds 0-2 (p ~ 1e-4 < the first look's level); seeds 3-4 do not undo it
    assert r5.verdict == "holds" and r5.n_seeds == 3 and r5.stage.startswith("decided at stage 1 of 2"), r5.line()
    assert f"level {levels[0]:.3g}" in r5.stage
    # undecided at the first look; at the second (5 seeds) it is tested at the second look's level
    assert r1.n_seeds == 5 and "stage 2 of 2" in r1.stage, r1.line()
    assert r1.verdict == ("holds" if r1.p_adjusted < levels[1] else "inconclusive")


def test_stage_costs_from_the_ledger(staged):
    from archsearch.report.stages import TRAIN_MAC_FACTOR, stage_costs, stage_text
    from archsearch.study.results import ledger_frame

    costs = stage_costs(staged, ledger_frame(staged))
    assert [(c["stage"], c["seeds"], c["trials"]) for c in costs] == [(1, [0, 1, 2], 9), (2, [3, 4], 6)]
    assert costs[0]["wall_s"] == 90.0 and costs[1]["train_s"] == 48.0
    t = staged.train
    per_trial = t.steps * t.batch_size * t.patch_size ** 2 * TRAIN_MAC_FACTOR
    assert costs[1]["train_macs"] == pytest.approx(6 * 2900.0 * per_trial)
    assert stage_text(costs).startswith("stage 1 (seeds 0-2): 9 trials, 1.5 min of trial time")


def test_a_real_run_stops_when_more_seeds_cannot_decide_and_goes_on_when_they_may(tmp_path, capsys, monkeypatch):
    """No model fails in a tiny run: 'convnet fails more often' reads 0 of 3 against 0 of 3, which no number of
    seeds decides, so the run stops after the first stage. Re-run with every undecided claim taken as one that more
    seeds may decide, it resumes at the second stage (the first is not trained again); a third run has nothing to
    train."""
    import archsearch.report.stages as stages
    import archsearch.study.trial as trial_module
    from archsearch.cli import main
    from archsearch.testing.ledger import trials_of

    # two training steps may leave a model no better than the noisy input (degenerate, a failure of its design:
    # archsearch.study.validity); here no model may fail, so the gate passes every seed (--workers 1: this process)
    monkeypatch.setattr(trial_module, "classify", lambda psnr, baseline_psnr: "ok")

    claims = [{**HEAD, "id": "convnet_fails", "kind": "failures", "point": "convnet", "more_than": [R1]}]
    path = write_study(tmp_path, seeds=[0, 1, 2, 3, 4], sequential={"stages": [3, 5]}, claims=claims,
                       sweep={"over": "xunit_kernel_size", "values": [1]}, latency={"enabled": False},
                       data={"train": "default", "val": "default:val", "test": "default:val"},
                       training={"steps": 2, "batch_size": 2, "patch_size": 24, "val_every": 1, "val_crop": 48})
    assert main(["run", str(path), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "stage 1 of 2: seeds 0, 1, 2" in out and "stage 2 of 2" not in out, out
    assert "stage 1: 0 of 1 claims decided" in out and "sequential seeding: stage 1 (seeds 0-2): 6 trials" in out
    assert sorted({t.user_attrs["seed"] for t in trials_of(load_study(path))}) == [0, 1, 2]

    monkeypatch.setattr(stages, "more_seeds_help", lambda v: v.verdict == "inconclusive")
    assert main(["run", str(path), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "6 trials planned, 6 already finished" in out, out
    assert "stage 2 of 2: seeds 0, 1, 2, 3, 4" in out and "stage 2 (seeds 3-4): 4 trials" in out, out
    assert sorted({t.user_attrs["seed"] for t in trials_of(load_study(path))}) == [0, 1, 2, 3, 4]
    assert main(["run", str(path), "--workers", "1"]) == 0
    assert "10 trials planned, 10 already finished" in capsys.readouterr().out


def test_seeds_added_to_a_ledger_resume_without_a_new_study(tmp_path, capsys):
    """Adding seeds to a study that has a ledger (what `--plan`'s power advice asks for; what a sequential
    study's later stage does to a ledger written without `sequential:`) resumes it: Optuna refuses a categorical
    parameter whose choices change, so the ledger's stored seed choices are widened in place -- the old ones
    first, in their order, so every stored trial keeps its seed."""
    import optuna
    import yaml

    from archsearch.cli import main

    path = write_study(tmp_path, seeds=[0, 5], training={"steps": 1, "batch_size": 2, "patch_size": 24,
                                                          "val_every": 0}, executor={"workers": 1},
                       sweep={"over": "xunit_kernel_size", "values": [1]}, latency={"enabled": False})
    assert main(["run", str(path)]) == 0
    body = yaml.safe_load(path.read_text())
    body["seeds"] = [0, 1, 5]  # 1 sorts between the stored 0 and 5: it is appended, the stored indices stay
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    assert main(["run", str(path)]) == 0, capsys.readouterr().err
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'out' / 'ledger.db'}").trials
    seeds = sorted((t.user_attrs["label"], t.params["seed"], t.user_attrs["seed"]) for t in trials)
    assert all(p == a for _, p, a in seeds)  # the Optuna param and the trained seed agree for every trial
    assert sorted({s for _, s, _ in seeds}) == [0, 1, 5] and len(trials) == 6
    assert list(trials[0].distributions["seed"].choices) == [0, 5, 1]
