"""Latency of a study's architectures, stored in its ledger.

Every trial measures its own latency at its end (``latency_ms_per_mp``, ``latency_device``, ``latency_input``
trial attributes; the study's ``latency`` settings) so Optuna's tools sort and plot it per trial. Trials that
finished without one (older ledgers, ``latency: {enabled: false}``) can be measured afterwards with
``archsearch latency``: Optuna refuses new attributes on finished trials, so those measurements are study user
attributes ``latency:<spec hash>``, one per architecture; :func:`stored_latency` reads them and the ledger frame
falls back to them.
"""

from __future__ import annotations

from typing import Any

from ..errors import ArchsearchError
from ..evaluate import select_device
from ..latency import describe_device, measure_latency
from ..spec import GraphSpec
from .ledger import open_study

LATENCY_PREFIX = "latency:"


def stored_latency(ostudy) -> dict[str, dict[str, Any]]:
    """``{spec hash: {latency_ms_per_mp, latency_device, latency_input}}`` as stored in the ledger."""
    return {k[len(LATENCY_PREFIX):]: v for k, v in ostudy.user_attrs.items() if k.startswith(LATENCY_PREFIX)}


def measure_study(study, ostudy=None, *, numbers: list[int] | None = None, device: str = "auto",
                  size: tuple[int, int] = (256, 256), warmup: int = 3, repeats: int = 10, force: bool = False,
                  echo=print) -> dict[int, dict[str, Any]]:
    """Measure the COMPLETE trials of a study (only ``numbers`` if given) and store the results in the ledger.

    One measurement per architecture (``spec_hash``): the seeds of a design point share it. Trials that already
    hold a measurement on the same device and input size are skipped unless ``force``. Returns
    ``{trial number: measurement}`` for the architectures measured in this call (one trial per architecture).
    """
    from optuna.trial import TrialState  # ~0.7 s: only ledger paths pay it

    ostudy = ostudy or open_study(study, create=False)
    dev_name = describe_device(select_device(device))
    input_label = f"{size[0]}x{size[1]}"
    todo = [t for t in ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if numbers is None or t.number in numbers]
    stored = stored_latency(ostudy)
    written: dict[int, dict[str, Any]] = {}
    measured_now: set[str] = set()
    for t in todo:
        ua = t.user_attrs
        key = str(ua.get("spec_hash"))
        have = stored.get(key)
        if key in measured_now or (not force and have and have.get("latency_device") == dev_name
                                   and have.get("latency_input") == input_label):
            continue
        measured_now.add(key)
        path = ua.get("spec_path")
        try:
            spec = GraphSpec.from_file(study.output_path(path))
        except (ArchsearchError, OSError, TypeError) as err:
            echo(f"trial {t.number}: no latency (cannot read spec {path!r}: {err})")
            continue
        res = measure_latency(spec, device=device, size=size, warmup=warmup, repeats=repeats)
        stored[key] = {"latency_ms_per_mp": res["ms_per_mp"], "latency_device": res["device"],
                       "latency_input": input_label}
        ostudy.set_user_attr(LATENCY_PREFIX + key, stored[key])
        echo(f"trial {t.number} ({ua.get('label') or ua.get('design')}): {res['ms_per_mp']:.2f} ms/MP "
             f"({res['device']}, {input_label})")
        written[t.number] = stored[key]
    return written

