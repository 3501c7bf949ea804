"""The report page: ``report.html`` (plotly.js embedded once, so it works offline) with every figure the ledger
supports, a PNG copy of each under ``report_png/``, and the trial tables."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..claims import METHOD, RULES
from ..study.ledger import open_study
from ..study.results import is_nan, ledger_frame
from .fidelity import METHOD as FIDELITY_METHOD
from .fidelity import fidelity_ranks
from .figures import (
    TITLES,
    FigureData,
    fig_activation_share,
    fig_fidelity,
    fig_grid,
    fig_importances,
    fig_pareto,
    fig_vs_size,
    to_plotly,
    to_png,
)
from .tables import design_points, memnet_grid, nsr_table, param_importances
from .verdicts import seed_noise, study_verdicts, write_verdicts


# ---------------------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Report:
    html: Path
    pngs: list[Path]
    frame: Any
    figures: list[FigureData]
    n_complete: int
    skipped: list[str]  # figures not drawn, with the reason
    verdicts: list = field(default_factory=list)  # the claims' verdicts (archsearch.claims.Verdict)
    claim_files: list = field(default_factory=list)  # claims.csv, claims.json
    fidelity: Any = None  # the ranking fidelity (archsearch.report.fidelity.Fidelity), where there are curves
    seed_noise: Any = None  # the pooled paired sd (archsearch.report.verdicts.SeedNoise), where seeds pair up


def _cli_args(study) -> str:
    """The ``--profile`` / ``--output-dir`` options that name this study's ledger on the command line."""
    c = study.config
    default = Path(c.output_dir) if c.output_dir else Path("runs") / (
        c.name if study.profile == "default" else f"{c.name}-{study.profile}")
    args = f" --profile {study.profile}" if study.profile != "default" else ""
    if Path(study.output_dir) != default:
        args += f" --output-dir {study.output_dir}"
    return args


def _fidelity_note(study, ostudy) -> str:
    return str(ostudy.user_attrs.get("fidelity") or study.config.fidelity or "fidelity not stated in the study file")


def published_by_label(study, points) -> dict[str, dict[str, Any]]:
    """The study's ``published:`` rows (resolved at load) by the ledger label of the point they are mapped to."""
    pairs = [(lab, v) for lab, v in zip(points["label"], points["sweep_value"])] if len(points) else []
    return study.config.published.by_label(pairs)


def build_figures(study, df, ostudy, verdicts=()) -> tuple[list[FigureData], list[str], dict[str, Any]]:
    """Every figure the ledger supports, the reasons for those left out, and the tables (NSR, MemNet)."""
    note = _fidelity_note(study, ostudy)
    refs = list(study.config.references)
    points = design_points(df)
    figs: list[FigureData] = []
    skipped: list[str] = []
    tables: dict[str, Any] = {}
    if points.empty:
        return figs, ["no complete trials: nothing to plot"], tables
    pub = published_by_label(study, points)
    for make, what in ((lambda: fig_activation_share(points, note, verdicts, pub), "activation share"),
                       (lambda: fig_vs_size(points, "n_params", note), "parameters"),
                       (lambda: fig_vs_size(points, "macs_per_pixel", note), "MACs")):
        f = make()
        figs.append(f) if f else skipped.append(f"PSNR vs {what}: no values in the ledger" if what != "activation share"
                                                else "PSNR vs activation share: no design has parameters in "
                                                     "its activations")
    for x in ("n_params", "macs_per_pixel", "latency_ms_per_mp"):
        sub = points
        if x == "latency_ms_per_mp":
            lat = df[(df["state"] == "COMPLETE") & df["latency_ms_per_mp"].notna()]
            if lat.empty:
                skipped.append(f"{TITLES['pareto_latency']}: no latency measured yet "
                               f"(run `archsearch latency {study.path}{_cli_args(study)}`)")
                continue
            devices = lat["latency_device"].value_counts()
            if len(devices) > 1:  # never mix devices on one time axis
                keep = devices.index[0]
                skipped.append(f"{TITLES['pareto_latency']}: latency measured on {len(devices)} devices; "
                               f"showing {keep} only")
                sub = design_points(df[(df["latency_device"] == keep) | df["latency_device"].isna()])
            f = fig_pareto(sub, x, note + f" | latency: {lat['latency_device'].iloc[0]}, input "
                                          f"{lat['latency_input'].iloc[0]}", refs)
        else:
            f = fig_pareto(sub, x, note, refs)
        if f:
            figs.append(f)
    nsr = nsr_table(df)
    if nsr is not None:
        tables["nsr"] = nsr
        figs.append(fig_grid(nsr, "nsr_table", TITLES["nsr"], "sparsity groups k", "residual blocks", note))
    mem = memnet_grid(df)
    if mem is not None:
        tables["memnet"] = mem
        figs.append(fig_grid(mem, "memnet_grid", TITLES["memnet"], "memory blocks M", "recursions R", note))
    fid = fidelity_ranks(df)
    if fid is not None:
        tables["fidelity"] = fid
        figs.append(fig_fidelity(fid, note))
    else:
        skipped.append("ranking fidelity: fewer than 3 design points with intermediate validation values")
    imp, why = param_importances(study, ostudy)
    if imp:
        tables["importances"] = imp
        figs.append(fig_importances(imp, note))
    else:
        skipped.append(f"parameter importances: {why}")
    return figs, skipped, tables


def _esc(v: Any) -> str:
    if v is None or is_nan(v):
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # trial numbers and seeds read back from a frame with NaNs
    return html.escape(str(v))


def _html_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _header(study, ostudy, df) -> str:
    c = study.config
    counts = df["state"].value_counts().to_dict()
    training = dict(c.training)
    facts = [
        ("task", ", ".join(f"{k}={v}" for k, v in dict(c.task).items())),
        ("data", f"train {c.data.train}, validation {c.data.val}, test {c.data.test}"
                 + (f" (root {c.data.data_root})" if c.data.data_root else "")),
        ("training", f"{study.train.steps} steps, batch {study.train.batch_size}, "
                     f"patch {study.train.patch_size}, "
                     + ", ".join(f"{k} {v}" for k, v in training.items()
                                 if k not in ("steps", "batch_size", "patch_size"))),
        ("training device", f"{training.get('device', 'auto')} (auto: CUDA when available, else CPU); hosts: "
                            + (", ".join(sorted({str(h) for h in df["host"].dropna()})) or "none yet")),
        ("seeds", ", ".join(str(s) for s in c.seeds)),
        ("budget", f"{c.budget.value:,.0f} {c.budget.metric} (tolerance {c.budget.tolerance})" if c.budget
         else "none"),
        ("design", (f"sweep over {c.sweep.over}: {list(c.sweep.values)}" if c.sweep.values else "each design once")
         if c.sweep else
         f"search: {c.search.sampler}, {c.search.n_trials} trials, objectives {list(c.search.objectives)}"),
        ("search space", f"{study.space.name} ({', '.join(d.name for d in study.space.designs)})"),
        ("ledger", f"{study.storage_display} (study {study.name})"),
        ("trials", ", ".join(f"{v} {k.lower()}" for k, v in counts.items()) or "none"),
    ]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    return (f"<h1>Study {html.escape(study.name)}</h1><p>{html.escape(c.description)}</p>"
            f"<p class='fidelity'><b>Fidelity:</b> {html.escape(_fidelity_note(study, ostudy))}</p>"
            f"<table class='facts'>{rows}</table>")


_CSS = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:8px 0 18px;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top}table.facts th{background:#f3f3f3;width:150px}
.fidelity{background:#fff4d6;border:1px solid #e0b84c;padding:8px 12px;font-size:15px}
.empty{background:#eef3ff;border:1px solid #88a;padding:12px;font-size:15px}.muted{color:#666}"""


def write_report(study, ostudy=None, out_dir: str | Path | None = None, *, png: bool = True) -> Report:
    """Write ``report.html`` (and ``report_png/<figure>.png`` per figure) for a study; see the module docstring.

    Only finished trials are plotted; RUNNING and WAITING trials are listed, FAIL/PRUNED trials and infeasible
    grid points are listed with their reasons. Without a COMPLETE trial the page says so instead of drawing
    empty axes.
    """
    ostudy = ostudy or open_study(study, create=False)
    df = ledger_frame(study, ostudy)
    out = Path(out_dir) if out_dir else Path(study.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    verdicts = study_verdicts(study, ostudy, df)
    claim_files = write_verdicts(verdicts, out) if study.config.claims else []
    figs, skipped, tables = build_figures(study, df, ostudy, verdicts)
    n_complete = int(df["state"].isin(["COMPLETE", "DEGENERATE"]).sum())  # degenerate trials are finished too
    parts = [_header(study, ostudy, df)]
    noise = seed_noise(df, study.config.replicates)
    if noise is not None:
        parts.append(f"<p class='muted'>{html.escape(noise.text())}</p>")
    if verdicts:
        parts.append(claims_html(verdicts))
    pngs: list[Path] = []
    if n_complete == 0:
        parts.append("<p class='empty'><b>No complete trials yet</b> — nothing to plot. "
                     "The trials in the ledger are listed below; re-run <code>archsearch report</code> when some "
                     "have finished.</p>")
    first = True
    for f in figs:
        parts.append(f"<h2>{html.escape(f.title)}</h2>")
        parts.append(to_plotly(f).to_html(full_html=False, include_plotlyjs=first, default_width="100%"))
        first = False
        if f.key == "nsr_table":
            parts.append(tables["nsr"].round(3).to_html(na_rep="", border=0))
        if f.key == "memnet_grid":
            parts.append(tables["memnet"].round(3).to_html(na_rep="", border=0))
        if f.key == "fidelity_ranks":
            parts.append(_fidelity_html(tables["fidelity"]))
        if png:
            p = to_png(f, out / "report_png" / f"{f.key}.png")
            pngs.append(p)
            parts.append(f"<p class='muted'>PNG copy (matplotlib): <a href='{html.escape(str(p.relative_to(out)))}'>"
                         f"{html.escape(p.name)}</a></p>")
    if figs:
        points = design_points(df)
        parts.append("<h2>Design points (mean over seeds)</h2>")
        cols = ["label", "design", "n_seeds", "psnr_mean", "psnr_std", "n_params", "macs_per_pixel",
                "activation_param_pct", "latency_ms_per_mp"]
        view = points[cols].copy()
        pub = published_by_label(study, points)
        if pub:
            view["published"] = [_published_cell(pub.get(lab)) for lab in points["label"]]
        for col in ("psnr_mean", "psnr_std", "macs_per_pixel", "activation_param_pct", "latency_ms_per_mp"):
            view[col] = view[col].astype(float).round(3)
        parts.append(view.to_html(index=False, na_rep="", border=0))
    if skipped:
        parts.append("<h2>Not shown</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in skipped) + "</ul>")
    parts.append(_status_tables(df))
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>archsearch report: {html.escape(study.name)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
    path = out / "report.html"
    write_text(path, page)  # whole or not at all: a kill or a full disk keeps the previous page
    return Report(path, pngs, df, figs, n_complete, skipped, verdicts, claim_files, tables.get("fidelity"), noise)


def _fidelity_html(fid) -> str:
    """The ranking-fidelity numbers under its figure: the verdict line, the method, one row per step."""
    rows = [{"step": r.step, "pooled rho": f"{r.rho:+.3f}" if math.isfinite(r.rho) else "",
             "95% CI": f"[{r.low:+.2f}, {r.high:+.2f}]" if math.isfinite(r.low) else "",
             "Kendall tau": f"{r.tau:+.3f}" if math.isfinite(r.tau) else "", "design points": r.n,
             "per seed": ", ".join(f"{s}: {v:+.2f}" for s, v in r.per_seed.items() if math.isfinite(v))}
            for r in fid.steps]
    return (f"<p><b>{html.escape(fid.text())}</b></p><p class='muted'>{html.escape(FIDELITY_METHOD)}</p>"
            + _html_table(rows, ["step", "pooled rho", "95% CI", "Kendall tau", "design points", "per seed"]))


def _published_cell(row: dict[str, Any] | None) -> str:
    if not row:
        return ""
    return f"{'~' if row['approximate'] else ''}{row['value']:g} {row['unit']} ({row['paper']} {row['table']})"


def _p_text(v) -> str:
    if not math.isfinite(v.p_value):
        return "-"
    adj = f" ({v.p_adjusted:.3g})" if math.isfinite(v.p_adjusted) else ""
    return f"{v.p_value:.3g}{adj}"


def claims_html(verdicts) -> str:
    """The claims table: verdict, estimate with its 95% interval and seeds, measured and published numbers."""
    v0 = verdicts[0]
    rows = [{"claim": v.claim_id, "verdict": v.verdict, "estimate (95% CI, seeds: per-seed values)":
             v.estimate_text(), "claim text": v.text, "rule": v.rule, "source": v.source,
             "measured (mean [95% CI])": v.measured_text(), "published": v.published_text(),
             "p (Holm-adjusted over the study)": _p_text(v), "note": v.notes()} for v in verdicts]
    rules = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(r)}</li>" for k, r in RULES.items())
    return (f"<h2>Claims ({len(verdicts)})</h2><p class='fidelity'><b>{html.escape(v0.scale_note)}</b> -- "
            f"{html.escape(v0.scale)}</p>"
            + _html_table(rows, list(rows[0]))
            + f"<p class='muted'>Method: {html.escape(METHOD)}.</p><ul class='muted'>{rules}</ul>"
            "<p class='muted'>Also in claims.csv and claims.json beside this page.</p>")


def _status_tables(df) -> str:
    parts = []
    active = df[df["state"].isin(["RUNNING", "WAITING"])]
    parts.append(f"<h2>Running and queued trials ({len(active)})</h2>")
    parts.append(_html_table(active.to_dict("records"), ["number", "state", "label", "seed"]) if len(active)
                 else "<p class='muted'>none</p>")
    bad = df[df["state"].isin(["FAIL", "PRUNED"])]
    parts.append(f"<h2>Failed and pruned trials ({len(bad)})</h2>")
    parts.append(_html_table(bad.to_dict("records"), ["number", "state", "label", "seed", "fail_reason"]) if len(bad)
                 else "<p class='muted'>none</p>")
    inf = df[df["state"] == "INFEASIBLE"]
    parts.append(f"<h2>Infeasible grid points ({len(inf)})</h2>")
    parts.append(_html_table(inf.to_dict("records"), ["design", "sweep_value", "label", "fail_reason"]) if len(inf)
                 else "<p class='muted'>none</p>")
    return "\n".join(parts)
