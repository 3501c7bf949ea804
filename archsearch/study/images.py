"""A study's images: loaded once per process (every trial of a study sees the same images and noise), and checked
against the study's settings before anything is written; the task's trivial baseline on the test images, scored
once per process too (it depends on the images and draws, never on a trial)."""

from __future__ import annotations

from typing import Any

from ..data import DataError, check_images, load_dataset
from ..errors import ConfigError
from ..evaluate import EvalResult, evaluate_baseline
from ..families import get_family
from .config import Study, config_fingerprint
from .space import try_family

_DATA_CACHE: dict[tuple[str, str, str], Any] = {}
_BASELINE_CACHE: dict[tuple[str, str, str], EvalResult] = {}


def _cache_key(study: Study) -> tuple[str, str, str]:
    """What the images (and so the baseline) of a loaded study depend on: its file, profile and settings."""
    return str(study.path), study.profile, config_fingerprint(study)


def study_data(study: Study):
    """Task and images, loaded once per process (every trial of a study sees the same images and noise)."""
    key = _cache_key(study)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_study_data(study)
    return _DATA_CACHE[key]


def study_baseline(study: Study) -> EvalResult:
    """The task's trivial baseline (:meth:`~archsearch.tasks.Task.baseline`) on the study's test images at its
    ``data.test_draws``, scored as a trial's model is; computed once per process, not once per trial."""
    key = _cache_key(study)
    if key not in _BASELINE_CACHE:
        task, _, _, test = study_data(study)
        _BASELINE_CACHE.clear()
        _BASELINE_CACHE[key] = evaluate_baseline(task, test, seed=0, draws=study.config.data.test_draws,
                                                 protocol=study.config.data.protocol)
    return _BASELINE_CACHE[key]


def load_study_data(study: Study):
    c = study.config
    task = study.task
    root = c.data.data_root

    def load(split: str):  # errors name the study file and the key (data.train) as well as the image file
        try:
            return load_dataset(getattr(c.data, split), color=task.color, data_root=root, split=split)
        except DataError as err:
            raise ConfigError(f"data.{split}", str(err), file=str(study.path)) from None

    train, val, test = load("train"), load("val"), load("test")
    if c.data.val_images:
        val = val[: c.data.val_images]
    return task, train, val, test


def check_study_data(study: Study, task: Any, train: list, val: list, test: list) -> None:
    """The study's images against its settings, before anything is written: training images at least one
    training patch (``training.patch_size``), validation images (after ``training.val_crop``) and test images
    at least the SSIM window after the SR border. Raises :class:`ConfigError` naming the study file, the key
    and the image file."""
    config = study.train
    scales = set()
    for d in study.space.designs:
        fam = get_family(d.family)
        err = try_family(fam, dict(d.fixed))
        if err is None:
            scales.add(fam(**dict(d.fixed)).scale)
    factor = max((task.input_factor(s) for s in scales), default=1)
    multiple = int(getattr(task, "scale", 1) or 1)
    checks = [(train, "training", "training.patch_size", dict(patch_size=config.patch_size, factor=factor)),
              (val, "validation", "training.val_crop" if config.val_crop else "data.val",
               dict(crop=config.val_crop, factor=factor, border=task.border)),
              (test, "test", "data.test", dict(factor=factor, border=task.border))]
    for images, role, key, kw in checks:
        if role == "validation" and not images:
            continue
        try:
            check_images(images, role=role, multiple=multiple, key=key, **kw)
        except DataError as err:
            raise ConfigError(key, str(err), file=str(study.path)) from None
