"""Exporting a study's trials as standalone models (``archsearch export STUDY --trial best|N|pareto``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from ..errors import ArchsearchError
from ..export import export_model
from ..spec import GraphSpec
from .config import Study
from .ledger import open_study
from .results import pareto_mask


def select_trials(study: Study, which: str, ostudy=None, *, any_config: bool = False) -> list:
    """The finished trials to export: ``best`` (highest PSNR), a trial number, or ``pareto`` (PSNR vs params)."""
    ostudy = ostudy or open_study(study, create=False, any_config=any_config)
    trials = ostudy.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE" and "checkpoint" in t.user_attrs
                and t.user_attrs.get("duplicate_of") is None]
    if which == "best":
        if not complete:
            raise ArchsearchError(f"study {study.name!r} has no complete trial to export yet")
        return [max(complete, key=lambda t: t.user_attrs["psnr"])]
    if which == "pareto":
        if not complete:
            raise ArchsearchError(f"study {study.name!r} has no complete trial to export yet")
        mask = pareto_mask([t.user_attrs["n_params"] for t in complete], [t.user_attrs["psnr"] for t in complete])
        return sorted((t for t, keep in zip(complete, mask) if keep), key=lambda t: t.user_attrs["n_params"])
    try:
        number = int(which)
    except ValueError:
        raise ArchsearchError(f"--trial must be best, pareto or a trial number, got {which!r}") from None
    match = [t for t in trials if t.number == number]
    if not match:
        numbers = ", ".join(str(t.number) for t in trials) or "none"
        raise ArchsearchError(f"study {study.name!r} has no trial {number}; trials: {numbers}")
    t = match[0]
    if t.state.name != "COMPLETE":
        reason = t.user_attrs.get("fail_reason", "")
        raise ArchsearchError(f"trial {number} of study {study.name!r} is {t.state.name}"
                              f"{f' ({reason})' if reason else ''}: only complete trials have weights to export")
    return [t]


def export_trials(study: Study, which: str = "best", *, out: str | Path | None = None,
                  formats: tuple[str, ...] = ("py",), ostudy=None, any_config: bool = False
                  ) -> list[tuple[Any, dict[str, Path]]]:
    """Export the selected finished trials (see :func:`select_trials`) with their trained weights into ``out``
    (default ``<study output>/export``); returns ``[(trial, {kind: path})]``."""
    folder = Path(out) if out else Path(study.output_dir) / "export"
    done = []
    for t in select_trials(study, which, ostudy, any_config=any_config):
        ua = t.user_attrs
        spec = GraphSpec.from_file(study.output_path(ua["spec_path"]))
        paths = export_model(spec, folder, state_dict=load_file(study.output_path(ua["checkpoint"])), formats=formats,
                             name=f"{study.name}_trial{t.number}",
                             provenance={"source": f"study:{study.name}", "trial": t.number, "psnr": ua.get("psnr"),
                                         "seed": ua.get("seed"), "label": ua.get("label"),
                                         "fidelity": study.config.fidelity})
        done.append((t, paths))
    return done
