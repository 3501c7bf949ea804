"""Training curves where users look: opt-in TensorBoard and MLflow logging of a training run.

A study turns it on with ``tracking: {tensorboard: DIR, mlflow: URI}`` (either or both; :class:`TrackingConfig`,
validated at load), ``archsearch train`` with ``--tensorboard DIR`` / ``--mlflow URI``. The one training loop
(:func:`archsearch.training.train`) calls the run's :meth:`TrackingRun.on_step` after every step and
:meth:`TrackingRun.on_validation` after every validation, and nothing else changes: no second loop, and with
tracking off no callback, no import and nothing written.

Per run (one trial's seed, or one ``archsearch train``) it logs, at each step: ``train/loss`` (the step's
training loss, as ``TrainResult.losses``), ``train/lr`` (the learning rate the step used), ``train/grad_norm``
(the gradient norm before clipping, as the trainer measured it) and ``train/steps_per_second`` (steps run so
far over the training time so far); at each validation ``val/psnr`` (dB, the ledger's validation curve); at the
end ``test/psnr`` and ``test/ssim`` when the caller gives them. Runs are tagged with the study, trial, label,
seed and spec hash.

* **TensorBoard**: one run folder per trial (``DIR/<study>/trial_<n>`` or ``trial_<n>_seed<s>`` for
  multi-seed trials; ``DIR/<model>_seed<s>_<UTC time>`` for ``archsearch train``), so ``tensorboard --logdir
  DIR`` compares the trials of a study side by side; the tags are written as the run's ``tags`` text.
* **MLflow**: one experiment per study (named as the study; ``archsearch train`` for single runs), one run
  per trial, tags as MLflow tags; any tracking URI MLflow accepts: a local ``sqlite:///PATH`` database or a
  ``file:PATH`` store need no server (MLflow 3 keeps the file store in maintenance mode and refuses it by default;
  a ``file:`` URI sets ``MLFLOW_ALLOW_FILE_STORE=true`` for the process, since it names that store explicitly). Metrics are sent in batches (``log_batch``), not one call a step.

The libraries are optional extras (``pip install "archsearch[tensorboard]"``, ``"archsearch[mlflow]"``),
imported only when a run is opened; a missing one is a one-line error before any training
(:func:`check_available`).
"""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ArchsearchError, SpecError

#: MLflow tracking-URI schemes accepted (a bare path is refused: say ``file:`` so the store's kind is explicit).
MLFLOW_SCHEMES = ("file", "sqlite", "http", "https", "postgresql", "mysql", "databricks")

#: extra -> (the module that must be importable, what to install)
_LIBRARIES = {"tensorboard": ("tensorboard", 'pip install "archsearch[tensorboard]"'),
              "mlflow": ("mlflow", 'pip install "archsearch[mlflow]"')}


@dataclass(frozen=True)
class TrackingConfig:
    """Where a study's (or a training run's) curves go: ``tensorboard`` a folder (relative: to the study's
    output folder), ``mlflow`` a tracking URI. Both ``None``: tracking off."""

    tensorboard: str | None = None
    mlflow: str | None = None

    def __post_init__(self) -> None:
        if self.tensorboard is not None and not self.tensorboard.strip():
            raise SpecError("tensorboard", "must be a folder for the event files (relative: to the study's output "
                                           "folder) or null, got ''")
        if self.mlflow is not None:
            scheme = self.mlflow.split(":", 1)[0] if ":" in self.mlflow else ""
            if scheme.split("+", 1)[0] not in MLFLOW_SCHEMES:
                raise SpecError("mlflow", f"must be an MLflow tracking URI with a scheme ({', '.join(MLFLOW_SCHEMES)}"
                                          f"; e.g. file:mlruns or sqlite:///mlflow.db), got {self.mlflow!r}")

    @property
    def enabled(self) -> bool:
        return self.tensorboard is not None or self.mlflow is not None


def check_available(config: TrackingConfig, flags: Mapping[str, str] | None = None) -> None:
    """Raise a one-line :class:`ArchsearchError` naming the extra to install when a requested library is missing
    (checked without importing it). ``flags`` names the settings in the message (default ``tracking.<key>``;
    ``archsearch train`` passes its ``--tensorboard``/``--mlflow``)."""
    for key in ("tensorboard", "mlflow"):
        if getattr(config, key) is None:
            continue
        module, install = _LIBRARIES[key]
        if importlib.util.find_spec(module) is None:
            where = (flags or {}).get(key, f"tracking.{key}")
            raise ArchsearchError(f"{where}: logging to {key} needs the {module} package, which is not installed: "
                                  f"{install}")


class TrackingRun:
    """One run's writers (see the module docstring); the trainer's callback. Use :func:`open_run`."""

    def __init__(self, writer: Any = None, mlflow: tuple[Any, str] | None = None, flush_every: int = 500):
        self._tb = writer
        self._ml = mlflow
        self._batch: list[Any] = []
        self._flush_every = flush_every

    # -- the trainer's callback ---------------------------------------------------------------------------
    def on_step(self, step: int, loss: float, lr: float, grad_norm: float | None, steps_per_second: float) -> None:
        values = {"train/loss": loss, "train/lr": lr, "train/steps_per_second": steps_per_second}
        if grad_norm is not None:
            values["train/grad_norm"] = grad_norm
        self._log(step, values)

    def on_validation(self, step: int, psnr: float) -> None:
        self._log(step, {"val/psnr": psnr})

    # -- the caller's ---------------------------------------------------------------------------------------
    def finish(self, status: str, final: Mapping[str, float] | None = None, step: int = 0) -> None:
        """Log ``final`` metrics (e.g. ``test/psnr``) at ``step``, flush and close; MLflow's run ends FINISHED for
        a ``completed`` status, else FAILED (a diverged, pruned or stopped run)."""
        if final:
            self._log(step, {k: float(v) for k, v in final.items() if v is not None})
        self._flush()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._ml is not None:
            client, run_id = self._ml
            client.set_terminated(run_id, status="FINISHED" if status == "completed" else "FAILED")
            self._ml = None

    def _log(self, step: int, values: Mapping[str, float]) -> None:
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(key, value, step)
        if self._ml is not None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            self._batch.extend(Metric(key, float(value), now, step) for key, value in values.items())
            if len(self._batch) >= self._flush_every:
                self._flush()

    def _flush(self) -> None:
        if self._ml is not None and self._batch:
            client, run_id = self._ml
            for i in range(0, len(self._batch), 1000):  # MLflow's limit per log_batch call
                client.log_batch(run_id, metrics=self._batch[i:i + 1000])
            self._batch = []
        if self._tb is not None:
            self._tb.flush()


def open_run(config: TrackingConfig, *, experiment: str, run_name: str, tags: Mapping[str, Any],
             base_dir: str | Path = ".") -> TrackingRun | None:
    """The writers of one run, or ``None`` when ``config`` turns tracking off (nothing imported or written).
    ``experiment`` groups runs (the study's name: an MLflow experiment, a TensorBoard parent folder);
    ``run_name`` names this run; a relative TensorBoard folder is relative to ``base_dir``."""
    if not config.enabled:
        return None
    check_available(config)
    tags = {k: str(v) for k, v in tags.items() if v is not None}
    writer = None
    if config.tensorboard is not None:
        from torch.utils.tensorboard import SummaryWriter

        root = Path(config.tensorboard).expanduser()
        root = root if root.is_absolute() else Path(base_dir) / root
        writer = SummaryWriter(log_dir=str(root / experiment / run_name))
        writer.add_text("tags", "\n".join(f"{k}: {v}  " for k, v in sorted(tags.items())), 0)
    ml = None
    if config.mlflow is not None:
        from mlflow.tracking import MlflowClient

        if config.mlflow.startswith("file:"):
            # MLflow 3 keeps its file store in maintenance mode and refuses it unless this is set: a file: URI is
            # the user's explicit choice of that store, so it is allowed (for this process)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        with warnings.catch_warnings():  # MLflow's SQL store maps its tables with an option SQLAlchemy deprecates
            warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated",
                                    category=DeprecationWarning)
            client = MlflowClient(tracking_uri=config.mlflow)
            found = client.get_experiment_by_name(experiment)
            exp_id = found.experiment_id if found is not None else client.create_experiment(experiment)
            run = client.create_run(exp_id, run_name=run_name, tags=tags)
        ml = (client, run.info.run_id)
    return TrackingRun(writer, ml)
