"""Seed noise, measured: a study's pooled paired sd (what every claim's interval is floored at) under training
variants that do not change what is compared -- the issue-19 goal is to halve ``xunit_budget``'s at the same wall
time.

For each variant the study file is copied with the variant's ``training:`` overrides (and its own output folder
under ``--out``), run to completion with ``archsearch.run_study``, and read back: every design point's per-seed
test PSNR, the pooled paired sd over every pair of points (``archsearch.claims.pooled_paired_sd``: Σ (n-1)·s² /
Σ (n-1) of the paired differences), its degrees of freedom, the mean last-third validation gain, and the summed
trial wall time. Variants (``--variants``):

* ``base`` -- the study as it is;
* ``ema`` -- an exponential moving average of the weights (``training.ema: 0.999``, BasicSR's model_ema) for
  validation and the result; no extra steps;
* ``batch16`` -- batch 16 at half the steps (the same number of training patches; a larger batch averages
  gradient noise);
* ``ema_batch16`` -- both;
* ``lr2x`` -- twice the study's learning rate (the same cosine schedule to 0): a design still rising at the end
  spreads with how far each seed got, and a faster start may leave less of that;
* ``lr_half`` -- half the study's learning rate (the same schedule): smaller steps may leave the seeds' trajectories
  less apart, if the designs still train to the end.

The ratio line compares each variant's pooled paired sd and wall time with ``base``'s, in this one run.

``--precise-bn N`` also re-scores every finished trial of each variant with its BatchNorm statistics re-estimated
("precise BN": the running means and variances reset, then averaged over N training batches with the final
weights, no gradient; Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021) -- the running statistics of the last
~10 small batches are an estimate too, and this tells whether their noise is part of the seed spread. Evaluation
only: nothing trained changes.

    python benchmarks/bench_seed_noise.py studies/xunit_budget.yaml [--profile P] [--variants base ema]
        [--steps N] [--seeds N] [--precise-bn N] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archsearch import load_study, run_study  # noqa: E402
from archsearch.claims import pooled_paired_sd  # noqa: E402
from archsearch.report.verdicts import ledger_points  # noqa: E402
from archsearch.study.results import ledger_frame  # noqa: E402

VARIANTS = {
    "base": {},
    "ema": {"ema": 0.999},
    "batch16": {"batch_size": 16, "_steps_factor": 0.5},
    "ema_batch16": {"ema": 0.999, "batch_size": 16, "_steps_factor": 0.5},
    "lr2x": {"_lr_factor": 2.0},
    "lr_half": {"_lr_factor": 0.5},
}


def variant_file(study_file: Path, profile: str | None, name: str, out: Path, steps: int | None,
                 seeds: int | None = None) -> Path:
    """The study file with the variant's training overrides (on the profile's training settings when a profile is
    named) and its own output folder, written under ``out``; with ``seeds``, the first N seeds of the study and no
    sequential stages (every variant trains the same seeds, whatever its claims decide)."""
    body = yaml.safe_load(study_file.read_text())
    body["search_space"] = str((study_file.parent / body["search_space"]).resolve())
    own = body if not profile else body["profiles"][profile]
    if seeds:
        own["seeds"] = list(own.get("seeds") or body["seeds"])[:seeds]
        own["sequential"] = None
    training = {**body.get("training", {}), **(own.get("training") or {})}  # what the run will use
    over = dict(VARIANTS[name])
    factor = over.pop("_steps_factor", 1.0)
    if "_lr_factor" in over:
        over["lr"] = float(training.get("lr", 1e-3)) * over.pop("_lr_factor")
    if steps:
        training["steps"], training["val_every"] = steps, max(1, steps // 6)
    training["steps"] = max(1, int(training.get("steps", 1000) * factor))
    if training.get("val_every"):
        training["val_every"] = max(1, int(training["val_every"] * factor))
    training.update(over)
    own["training"] = training
    body["name"] = f"{body['name']}_{name}"
    body["output_dir"] = str(out / name)
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def measure(path: Path, profile: str | None) -> dict:
    study = load_study(path, profile)
    t0 = time.perf_counter()
    summary = run_study(study, progress=False)
    wall = time.perf_counter() - t0
    df = ledger_frame(study)
    pts = ledger_points(df)
    sd, dof = pooled_paired_sd(pts.per_seed)
    gains = [g for d in pts.gains.values() for g in d.values()]
    done = df[df["state"] == "COMPLETE"]
    return {"status": summary.status, "sd": sd, "df": dof, "points": len(pts.per_seed),
            "seeds": sorted({s for d in pts.per_seed.values() for s in d}), "wall_s": wall,
            "trial_s": float(done["wall_time_s"].astype(float).sum()),
            "gain": sum(gains) / len(gains) if gains else float("nan"),
            "psnr": {lab: sorted(d.items()) for lab, d in sorted(pts.per_seed.items())}}


def precise_bn(path: Path, profile: str | None, batches: int) -> tuple[float, int, int]:
    """The variant's pooled paired sd with every trial re-scored after re-estimating its BatchNorm statistics over
    ``batches`` training batches (the study's patch size and batch size, a fixed sampler seed); and how many
    trials were re-scored and how many of them had a BatchNorm layer."""
    import torch

    from archsearch.builder import build
    from archsearch.evaluate import evaluate
    from archsearch.spec import GraphSpec
    from archsearch.study.images import study_data
    from archsearch.study.ledger import open_study
    from archsearch.training import PatchSampler
    from archsearch.weights import load_weights

    study = load_study(path, profile)
    task, train_images, _val, test_images = study_data(study)
    per_seed: dict[str, dict[int, float]] = {}
    n = with_bn = 0
    for t in open_study(study, create=False).trials:
        ua = t.user_attrs
        if t.state.name != "COMPLETE" or "checkpoint" not in ua:
            continue
        model = build(GraphSpec.from_file(study.output_path(ua["spec_path"])))
        load_weights(model, study.output_path(ua["checkpoint"]))  # the project's one weights loader
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        with torch.no_grad():
            if bns:
                for m in bns:
                    m.reset_running_stats()
                    m.momentum = None  # a cumulative average over the batches below
                model.train()
                sampler = PatchSampler(task, train_images, study.train.patch_size, seed=1234)
                for _ in range(batches):
                    model(sampler.batch(study.train.batch_size)[0])
            model.eval()
            psnr = evaluate(model, task, test_images, seed=0, draws=study.config.data.test_draws,
                            protocol=study.config.data.protocol).psnr
        per_seed.setdefault(ua["label"], {})[ua["seed"]] = psnr
        n, with_bn = n + 1, with_bn + bool(bns)
    sd, _dof = pooled_paired_sd(per_seed)
    return sd, n, with_bn


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study", type=Path)
    p.add_argument("--profile", default=None)
    p.add_argument("--variants", nargs="+", default=["base", "ema"], choices=sorted(VARIANTS))
    p.add_argument("--steps", type=int, default=None, help="override the study's steps (base; variants scale it)")
    p.add_argument("--seeds", type=int, default=None, help="train the study's first N seeds, no sequential stages")
    p.add_argument("--precise-bn", type=int, default=0, metavar="N",
                   help="also re-score each trial with BatchNorm statistics re-estimated over N training batches")
    p.add_argument("--out", type=Path, default=None, help="folder for the variants' runs (default: a temp folder)")
    args = p.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="seed_noise_"))
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.variants:
        path = variant_file(args.study, args.profile, name, out, args.steps, args.seeds)
        print(f"[{name}] {path}", flush=True)
        results[name] = r = measure(path, args.profile)
        print(f"[{name}] {r['status']}: pooled paired sd {r['sd']:.4f} dB ({r['df']} df, {r['points']} points x "
              f"seeds {r['seeds']}), mean last-third gain {r['gain']:+.3f} dB, run {r['wall_s']:.0f} s, trials "
              f"{r['trial_s']:.0f} s", flush=True)
        for lab, vals in r["psnr"].items():
            print(f"    {lab}: " + ", ".join(f"seed {s} {v:.3f}" for s, v in vals))
        if args.precise_bn:
            sd, n, with_bn = precise_bn(path, args.profile, args.precise_bn)
            ratio = f" (x{sd / r['sd']:.2f} of the running statistics')" if r["sd"] else ""
            print(f"[{name}] precise BN ({args.precise_bn} batches; {with_bn} of {n} trials have BatchNorm): pooled "
                  f"paired sd {sd:.4f} dB{ratio}", flush=True)
    base = results.get("base")
    if base and base["sd"] > 0:
        for name, r in results.items():
            if name != "base":
                print(f"{name} / base: paired sd x{r['sd'] / base['sd']:.2f}, trial time x"
                      f"{r['trial_s'] / base['trial_s']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
