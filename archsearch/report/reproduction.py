"""``docs/reproduction.md``: every study's claims, published numbers, measured numbers and verdicts, generated
from the ledgers by one command (``archsearch report --reproduction docs/reproduction.md studies/*.yaml``)."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..claims import METHOD, PROXY_NOTE, RULES
from ..claims.stats import IMAGE_METHOD
from ..claims.verdicts import PUBLISHED_NOTE
from ..errors import ArchsearchError, ConfigError
from ..study.ledger import open_study
from ..study.loader import load_study
from ..study.plan import plan_study
from ..study.results import ledger_frame
from .stages import TRAIN_MAC_FACTOR, stage_costs, stage_text, training_macs
from .verdicts import seed_noise, study_verdicts


def run_record(ostudy, df) -> dict[str, Any]:
    """Wall time and machine of a study's runs: the study attribute ``runs`` (one record per ``archsearch run``:
    wall_s, machine, device, ...) summed, the machine of the last; without it, the sum of the trials'
    ``wall_time_s``, labelled as such."""
    runs = [r for r in (ostudy.user_attrs.get("runs") or []) if isinstance(r, dict)]
    if runs:
        last = runs[-1]
        wall = sum(float(r.get("wall_s") or 0.0) for r in runs)
        machine = ", ".join(str(x) for x in (last.get("machine"), last.get("device")) if x) or "machine not recorded"
        extra = f"; {len(runs)} runs" if len(runs) > 1 else ""
        return {"wall_s": wall, "wall": f"{_duration(wall)}{extra}", "machine": machine,
                "finished": last.get("finished")}
    done = df[df["state"] == "COMPLETE"] if len(df) else df
    wall = float(done["wall_time_s"].astype(float).sum()) if len(done) else 0.0
    hosts = sorted({str(h) for h in df.get("host", []) if isinstance(h, str)}) if len(df) else []
    return {"wall_s": wall, "wall": f"{_duration(wall)} (sum of trial times; run record missing)",
            "machine": f"hosts {', '.join(hosts)} (run record missing)" if hosts else "not recorded",
            "finished": None}


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min ({s:.0f} s)"
    return f"{s / 3600:.1f} h ({s:.0f} s)"


def _test_set(study) -> str:
    """Which images the verdicts are on: the study's test set (``default``: the embedded photographs)."""
    test = study.config.data.test
    return "the embedded photographs' test split" if test == "default" else str(test)


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def study_section(path: str | Path, profile: str | None) -> str:
    """One study's section of the page (or a line saying why there is nothing to show)."""
    try:
        study = load_study(path, profile)
    except ConfigError as err:
        if profile and err.path == "profiles" and "no profile" in err.message:
            return f"## `{Path(path).name}`\n\nNo profile `{profile}` in this study file.\n"
        raise
    c = study.config
    at = f", profile `{study.profile}`" if study.profile != "default" else ""
    head = [f"## {study.name} (`{path}`{at})", "", f"{c.description}" if c.description else "",
            f"**Fidelity:** {c.fidelity or 'not stated in the study file'}", ""]
    try:
        ostudy = open_study(study, create=False)
    except ArchsearchError as err:
        if "no ledger" in str(err):
            return "\n".join([*head, f"Not run at this profile ({study.profile}): no ledger.", ""])
        return "\n".join([*head, f"Not read at this profile ({study.profile}): {err}", ""])
    df = ledger_frame(study, ostudy)
    rec = run_record(ostudy, df)
    counts = df["state"].value_counts().to_dict() if len(df) else {}
    verdicts = study_verdicts(study, ostudy, df)
    scale = verdicts[0].scale_note if verdicts else (
        PUBLISHED_NOTE if study.space.all_published
        else "paper scale" if study.profile == "paper" else PROXY_NOTE)
    fidelity = ostudy.user_attrs.get("fidelity") or c.fidelity
    head[3] = f"**Fidelity:** {fidelity or 'not stated in the study file'}"
    lines = [*head, f"Profile `{study.profile}` -- {scale}. Trials: "
             + (", ".join(f"{v} {k.lower()}" for k, v in counts.items()) or "none")
             + f". Seeds: {', '.join(str(s) for s in c.seeds)}. Test set: {_test_set(study)}. Wall time: "
             f"{rec['wall']}. Machine: {rec['machine']}."
             + (f" {noise.sentence()}" if (noise := seed_noise(df, c.replicates)) else ""),
             ""]
    if c.replicates == "images":
        lines += [f"**Method in this study:** the replicates are the test images, not seeds: {IMAGE_METHOD}. Test "
                  f"protocol: {c.data.protocol}"
                  + (" (the DnCNN authors' test script: one fixed noise draw, float output)"
                     if c.data.protocol == "dncnn" else "") + ".", ""]
    published = [d for d in study.space.designs if d.published]
    if published:
        lines += ["Published weights (evaluated, not trained): " + "; ".join(
            f"`{d.name}` {Path(str(d.weights)).name}" for d in published) + ". The sha256 of each file is in the "
            "ledger (`weights_sha256`).", ""]
    staged = stage_text(stage_costs(study, df))
    if staged:
        lines += [f"Sequential seeding ({c.sequential.spending} spending over stages of "
                  f"{', '.join(str(n) for n in c.sequential.stages)} seeds): {staged}.", ""]
    if not c.claims:
        lines += ["No claims in this study file.", ""]
        return "\n".join(lines)
    unit = "images" if c.replicates == "images" else "seeds"
    lines += [f"| claim | source | published | measured (mean [95% CI]) | verdict | estimate (95% CI, {unit}: per-"
              f"{unit[:-1]} values) | {unit} |", "|---|---|---|---|---|---|---:|"]
    for v in verdicts:
        est = v.estimate_text() if math.isfinite(v.estimate) or v.unit == "failure rate" else "-"
        notes = v.notes()
        verdict = f"**{v.verdict}**" + (f" ({_md(notes)})" if notes else "")
        tag = "" if v.tested == "full" else " *(partly tested)*"
        lines.append(f"| `{v.claim_id}`{tag}: {_md(v.text)} | {_md(v.source)} | {_md(v.published_text())} | "
                     f"{_md(v.measured_text() or '-')} | {verdict} | {_md(est)} | {v.n_seeds} |")
    lines.append("")
    paper = paper_scale(path) if study.profile != "paper" else ""
    if paper:
        lines += [paper, ""]
    return "\n".join(lines)


def paper_scale(path: str | Path) -> str:
    """A line giving the compute of the study's ``paper`` profile (trials, steps, training MACs), computed from its
    plan (sizes only; nothing is built or timed). Empty when the study has no paper profile."""
    try:
        study = load_study(path, "paper")
    except ArchsearchError:
        return ""
    if study.space.all_published:  # published checkpoints: evaluated, nothing to train
        return (f"Paper profile (`--profile paper`): the same {len(study.space.designs)} published checkpoints "
                f"evaluated on {study.config.data.test} (no training; CPU-sized).")
    try:
        plan = plan_study(study, timed_steps=0)
    except ArchsearchError as err:
        return f"Paper profile: not planned ({err})."
    steps, batch, patch = study.train.steps, study.train.batch_size, study.train.patch_size
    macs = sum(len(p.seeds) * training_macs(p.macs_per_pixel, study.train) for p in plan.points)
    return (f"Paper profile (`--profile paper`, for a GPU): {plan.n_trials} trials of {steps:,} steps of {batch} x "
            f"{patch}x{patch} patches; training compute {macs / 1e15:,.1f} PMACs (forward x {TRAIN_MAC_FACTOR}, "
            f"from the planned sizes). At 10-50 TMAC/s sustained (what small-channel convolutions reach on one "
            f"H100; an assumption, not a measurement) that is {macs / 50e12 / 3600:,.1f}-{macs / 10e12 / 3600:,.1f} "
            "GPU-hours.")


def profiles_of(profile: str | Sequence[str] | None) -> list[str | None]:
    """``--profile`` for the page: one profile, a comma-separated list (``default,cpu_std``) or a list; each
    study gets a section per profile (a study without that profile, one line saying so), and one for its
    ``paper`` profile whenever that has a ledger."""
    if profile is None:
        return [None]
    names = [p.strip() for p in (profile.split(",") if isinstance(profile, str) else profile)]
    if not names or any(not p for p in names):
        raise ArchsearchError(f"--profile: a profile name or a comma-separated list of them, got {profile!r}")
    return list(dict.fromkeys(names))


def reproduction_page(study_files: Sequence[str | Path], profile: str | Sequence[str] | None = None,
                      command: str = "") -> str:
    profiles = profiles_of(profile)
    today = _dt.date.today().isoformat()
    out = ["# Reproduction status", "",
           f"Generated by `{command or 'archsearch report --reproduction'}` on {today} from the studies' ledgers; "
           "do not edit by hand.", "",
           "Each claim of a paper is checked on our own runs. **Method:** " + METHOD + ". **Validity gates:** a seed "
           "whose test PSNR is within 0.1 dB of the task's trivial baseline (the noisy input; bicubic for SR; the "
           "compressed input for JPEG) or below it is *degenerate*: it never enters a mean and counts, with "
           "divergences, as a failure of that design (kind `failures` decides claims about them); a point whose "
           "validation PSNR still rose by more than max(0.05 dB, a quarter of the difference the claim tests) over "
           "the last third of training is *under-trained* and cannot decide the claim. **Verdicts:** *holds*, "
           "*contradicted*, or *inconclusive* (more seeds may decide it: the 80%-power seed count is given at the "
           "paired sd the claim showed; an equivalence that cannot hold at the seeds it has reads \"untestable at "
           "this profile\"), by each kind's rule, then Holm's correction over the study's tested claims (a verdict "
           "no longer significant after it reads inconclusive). Beside every interval: its per-seed values. A claim "
           "marked *partly tested* names the clause its encoding leaves out:", ""]
    out += [f"- **{k}**: {r}" for k, r in RULES.items()]
    out += ["", f"Only `--profile paper` runs are at the papers' scale; every other profile is a {PROXY_NOTE}: "
            "a verdict there is about the proxy, not a reproduction of the paper's numbers.", ""]
    for path in study_files:
        for prof in profiles:
            out.append(study_section(path, prof))
        if "paper" not in profiles and _has_ledger(path, "paper"):  # a paper-scale run is shown whenever it exists
            out.append(study_section(path, "paper"))
    return "\n".join(out).rstrip() + "\n"


def _has_ledger(path: str | Path, profile: str) -> bool:
    """Whether the study file has this profile and a ledger was written for it."""
    try:
        open_study(load_study(path, profile), create=False)
    except ArchsearchError:
        return False
    return True


def write_reproduction(study_files: Sequence[str | Path], out: str | Path,
                       profile: str | Sequence[str] | None = None, command: str = "") -> Path:
    """Write the page (see :func:`reproduction_page`) to ``out``."""
    text = reproduction_page(study_files, profile, command)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)  # whole or not at all: a kill keeps the previous page
    return path
