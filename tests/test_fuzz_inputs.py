"""Fuzz: hundreds of generated malformed inputs across ``run``, ``inspect``, ``export``, ``evaluate`` and ``train``.

Every case asserts the documented promise (README, "Everyday commands") word for word: exit status 2, exactly one stderr line that names the file and
the key path (or the command-line flag), no traceback, and nothing written -- the working directory (a fresh tmp
folder holding the study, its search space, a spec, images and weight files) is byte-for-byte the same after.

The classes of bad input, each generated from a few templates:

* family arguments: sweep values, designs' ``fixed`` and ``search`` arguments of the wrong type or breaking a rule
* settings that make every trial fail: seeds, training settings, executor, budget, data counts, task values
* training-setting errors naming file and key (``training.lr``)
* encodings (UTF-16/32, Latin-1, binary), malformed YAML/JSON, repeated keys, wrong top-level types
* storage URLs (unknown dialects; never a password in the message)
* names and paths: study/design/spec/block names that would leave the output root or break generated code;
  output folders that are a root or hold the study file
* data: images smaller than the patch, the scale or the SSIM window; unknown, empty and corrupt datasets
* command-line arguments of every subcommand (seeds, sizes, devices, weights files, unwritable outputs)
* the run lock's layering: no lock after a failed check, ``--fresh`` on a folder archsearch did not
  create, ``status`` of a study never run. These are marked ``# lead:`` below.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image as PILImage

from archsearch.cli import main

DELETE = object()


@dataclass
class Case:
    id: str
    argv: list[str]
    expect: tuple[str, ...]  # substrings of the one stderr line: the file and the key path (or the flag)
    files: dict[str, Any] = field(default_factory=dict)  # relative path -> bytes, str, or a YAML-able object
    setup: Callable[[Path], None] | None = None


# ---------------------------------------------------------------------------------------------------------
# the valid working directory every case starts from
# ---------------------------------------------------------------------------------------------------------
SPACE = {
    "name": "fz_space",
    "designs": [
        {"name": "convnet", "family": "convnet", "fixed": {"depth": 3}, "free_knob": "width"},
        {"name": "xnet", "family": "xnet", "fixed": {"depth": 3}, "free_knob": "width",
         "search": {"xunit_kernel_size": {"choices": [1, 3]}}},
    ],
}
STUDY = {
    "name": "fz",
    "search_space": "space.yaml",
    "task": {"name": "denoise", "sigma": 25},
    "data": {"train": "imgs", "val": "imgs", "test": "imgs"},
    "budget": {"metric": "params", "value": 3000, "tolerance": 0.1},
    "sweep": {"over": "xunit_kernel_size", "values": [1, 3]},
    "seeds": [0],
    "training": {"steps": 2, "batch_size": 2, "patch_size": 24, "val_every": 2},
    "latency": {"enabled": False},
}
SPEC = {"name": "tiny", "in_channels": 1, "out_channels": 1, "global_residual": "subtract",
        "blocks": [{"name": "c0", "type": "conv", "in_channels": 1, "out_channels": 4, "kernel_size": 3},
                   {"name": "r0", "type": "relu", "channels": 4},
                   {"name": "c1", "type": "conv", "in_channels": 4, "out_channels": 1, "kernel_size": 3}]}


def _png(size: tuple[int, int], seed: int) -> bytes:
    import io

    arr = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _mismatching_weights() -> bytes:
    import torch
    from safetensors.torch import save

    return save({"blocks.0.weight": torch.zeros(3, 3)})


_BASE: dict[str, bytes] = {}


def base_files() -> dict[str, bytes]:
    if not _BASE:
        _BASE.update({
            "study.yaml": yaml.safe_dump(STUDY, sort_keys=False).encode(),
            "space.yaml": yaml.safe_dump(SPACE, sort_keys=False).encode(),
            "spec.yaml": yaml.safe_dump(SPEC, sort_keys=False).encode(),
            "imgs/a.png": _png((40, 40), 0), "imgs/b.png": _png((40, 44), 1), "imgs/c.png": _png((48, 40), 2),
            "tiny/t.png": _png((8, 8), 3),
            "wide/w.png": _png((9, 64), 4),
            "corrupt/x.png": b"\x89PNG\r\n\x1a\n not really a png",
            "empty/.keep": b"",
            "garbage.pt": b"this is not a checkpoint",
            "empty.pt": b"",
            "mismatch.safetensors": _mismatching_weights(),
            "notes.txt": b"a file, not a folder\n",
        })
    return _BASE


def _write(root: Path, rel: str, content: Any) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(yaml.safe_dump(content, sort_keys=False))


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        out[rel + "/"] = "dir"
        for name in filenames:
            p = Path(dirpath) / name
            out[os.path.join(rel, name)] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def set_path(body: dict, dotted: str, value: Any) -> dict:
    """A copy of ``body`` with the value at ``a.b[2].c`` replaced (or deleted with DELETE)."""
    import re

    body = copy.deepcopy(body)
    parts = [p for p in re.split(r"\.|(\[\d+\])", dotted) if p]
    node = body
    for p in parts[:-1]:
        node = node[int(p[1:-1])] if p.startswith("[") else node.setdefault(p, {})
    last = parts[-1]
    key: Any = int(last[1:-1]) if last.startswith("[") else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return body


# ---------------------------------------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------------------------------------
# (key to change, bad value, key path the message must name)
STUDY_MUTATIONS: list[tuple[str, Any, str]] = [
    # family arguments through the sweep
    ("sweep.values", ["one", "three"], "sweep.values[0]"),
    ("sweep.values", [1.5, 3.0], "sweep.values[0]"),
    ("sweep.values", [2, 4], "sweep.values[0]"),
    ("sweep.values", [1, 4], "sweep.values[1]"),
    ("sweep.values", [1, 33], "sweep.values[1]"),
    ("sweep.values", [True], "sweep.values[0]"),
    ("sweep.values", [None], "sweep.values[0]"),
    ("sweep.values", [[1]], "sweep.values[0]"),
    ("sweep.values", [1, 1], "sweep.values[1]"),
    ("sweep.values", [], "sweep.values"),
    ("sweep.over", "widht", "sweep.over"),
    ("sweep.over", "width", "sweep.over"),
    ("sweep.over", "depth", "sweep.over"),
    ("sweep.pct_tolerance", -1, "sweep.pct_tolerance"),
    ("sweep.extra", 1, "sweep.extra"),
    # seeds
    ("seeds", [-1], "seeds[0]"),
    ("seeds", [10**23], "seeds[0]"),
    ("seeds", [0, 2**31], "seeds[1]"),
    ("seeds", [1, 1], "seeds[1]"),
    ("seeds", [], "seeds"),
    ("seeds", ["a"], "seeds"),
    ("seeds", [1.5], "seeds"),
    # training settings
    ("training.lr", float("inf"), "training.lr"),
    ("training.lr", float("nan"), "training.lr"),
    ("training.lr", -0.1, "training.lr"),
    ("training.lr", 0, "training.lr"),
    ("training.lr", "fast", "training.lr"),
    ("training.steps", 0, "training.steps"),
    ("training.steps", 99999999999999999999999999, "training.steps"),
    ("training.steps", 2.5, "training.steps"),
    ("training.batch_size", 0, "training.batch_size"),
    ("training.patch_size", -4, "training.patch_size"),
    ("training.weight_decay", -1, "training.weight_decay"),
    ("training.device", "tpu", "training.device"),
    ("training.device", "cuda:x", "training.device"),
    ("training.val_crop", 0, "training.val_crop"),
    ("training.schedule", "cosinee", "training.schedule"),
    ("training.loss", "l3", "training.loss"),
    ("training.seed", -1, "training.seed"),
    ("training.grad_clip", 0, "training.grad_clip"),
    ("training.max_grad_norm", float("inf"), "training.max_grad_norm"),
    ("training.step_milestones", [0.5, 2], "training.step_milestones[1]"),
    ("training.report_steps", [0], "training.report_steps[0]"),
    ("training.val_every", -1, "training.val_every"),
    ("training.stepz", 3, "training.stepz"),
    ("training.augment", "yes", "training.augment"),
    # executor, data, budget, task, search
    ("executor.cpus_per_trial", -2, "executor.cpus_per_trial"),
    ("executor.cpus_per_trial", float("nan"), "executor.cpus_per_trial"),
    ("executor.gpus_per_trial", -1, "executor.gpus_per_trial"),
    ("executor.workers", 0, "executor.workers"),
    ("executor.kind", "slurm", "executor.kind"),
    ("data.val_images", -3, "data.val_images"),
    ("data.train", "", "data.train"),
    ("data.test", 5, "data.test"),
    ("budget.value", float("inf"), "budget.value"),
    ("budget.value", -5, "budget.value"),
    ("budget.metric", "flops", "budget.metric"),
    ("budget.tolerance", 3, "budget.tolerance"),
    ("task.sigma", float("nan"), "task.sigma"),
    ("task.sigma", 300, "task.sigma"),
    ("task.name", "deblur", "task"),
    ("latency.size", [4, 4], "latency.size"),
    ("budjet", {"value": 1}, "budjet"),
    ("search", {"sampler": "tpe", "n_trials": 2}, "sweep"),
    # storage
    ("storage", "oracle://scott:tiger-s3cr3t@db/orcl", "storage"),
    ("storage", "postgresq://u:s3cr3t@h/db", "storage"),
    ("storage", "user:s3cr3t@host/db", "storage"),
    ("storage", "postgresql+asyncpg://u:s3cr3t@h/db", "storage"),
    ("storage", "sqlite://", "storage"),
    ("storage", {"password": "s3cr3t"}, "storage"),
    # names and output folders
    ("name", "", "name"),
    ("name", "../../x", "name"),
    ("name", "/abs/x", "name"),
    ("name", "a/b", "name"),
    ("name", ".hidden", "name"),
    ("name", 'x"""\nimport os', "name"),
    ("name", "x" * 65, "name"),
    ("name", ["a"], "name"),
    ("output_dir", "", "output_dir"),
    ("output_dir", "/", "output_dir"),
    ("output_dir", "runs", "output_dir"),
    ("output_dir", ".", "output_dir"),
    ("output_dir", "notes.txt", "output_dir"),
    ("search_space", "missing.yaml", "search_space"),
    ("profiles", {"../x": {}}, "profiles"),
    ("profiles", ["a"], "profiles"),
]

SPACE_MUTATIONS: list[tuple[str, Any, str]] = [
    ("designs[0].fixed.depth", "three", "designs[0].fixed.depth"),
    ("designs[0].fixed.depth", 1, "designs[0].fixed.depth"),
    ("designs[0].fixed.depth", 2.0, "designs[0].fixed.depth"),
    ("designs[0].fixed.kernel_size", 4, "designs[0].fixed.kernel_size"),
    ("designs[0].fixed.kernel_size", -1, "designs[0].fixed.kernel_size"),
    ("designs[0].fixed.bn_eps", float("inf"), "designs[0].fixed.bn_eps"),
    ("designs[0].fixed.global_residual", "both", "designs[0].fixed.global_residual"),
    ("designs[0].fixed.name", "a b", "designs[0].fixed.name"),
    ("designs[0].fixed.name", '"""\nimport os', "designs[0].fixed.name"),
    ("designs[0].fixed.deepth", 3, "designs[0].fixed.deepth"),
    ("designs[1].fixed.xunit_design", "BN+XX", "designs[1].fixed.xunit_design"),
    ("designs[1].fixed.batch_norm", "yes", "designs[1].fixed.batch_norm"),
    ("designs[1].search.xunit_kernel_size", {"choices": [1, 4]}, "designs[1].search.xunit_kernel_size.choices[1]"),
    ("designs[1].search.xunit_kernel_size", {"choices": ["one"]}, "designs[1].search.xunit_kernel_size.choices[0]"),
    ("designs[1].search.xunit_kernel_size", {"low": 1, "high": 9}, "designs[1].search.xunit_kernel_size"),
    ("designs[1].search.xunit_kernel_size", {"low": 1, "high": 9, "step": 0}, "designs[1].search.xunit_kernel_size"),
    ("designs[1].search.xunit_kernel_size", {"choices": []}, "designs[1].search.xunit_kernel_size.choices"),
    ("designs[1].search.xunit_design", {"low": 1, "high": 2}, "designs[1].search.xunit_design"),
    ("designs[0].name", "../x", "designs[0].name"),
    ("designs[0].name", "", "designs[0].name"),
    ("designs[0].name", "xnet", "designs"),
    ("designs[0].family", "convnett", "designs[0].family"),
    ("designs[0].free_knob", "depth", "designs[0].free_knob"),
    ("name", "a b", "name"),
    ("designs", [], "designs"),
]

# raw bytes of a YAML file: file-level errors (the message names the file)
RAW_YAML: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("utf16-bom", lambda b: b.decode().encode("utf-16")),
    ("utf16-be-no-bom", lambda b: b.decode().encode("utf-16-be")),
    ("utf32", lambda b: b.decode().encode("utf-32")),
    ("latin1", lambda b: b + "# café\n".encode("latin-1")),
    ("binary", lambda b: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b),
    ("empty", lambda b: b""),
    ("list", lambda b: b"- a\n- b\n"),
    ("scalar", lambda b: b"just words\n"),
    ("unclosed", lambda b: b"name: [unclosed\n"),
    ("tabs", lambda b: b"name:\n\t- x\n"),
    ("python-tag", lambda b: b"name: !!python/object/apply:os.system ['true']\n"),
    ("two-documents", lambda b: b + b"---\n" + b),
]


def _dup_study_top(b: bytes) -> bytes:
    return b.replace(b"name: fz\n", b"name: fz\nname: fz2\n", 1)


def _dup_study_nested(b: bytes) -> bytes:
    return b.replace(b"training:\n", b"training:\n  lr: 0.1\n  lr: 0.2\n", 1)


def _dup_space(b: bytes) -> bytes:
    return b.replace(b"  fixed:\n    depth: 3\n", b"  fixed:\n    depth: 3\n    depth: 4\n", 1)


def _hostile_names() -> list[str]:
    return ['x"""\nimport os; os.system("touch PWNED")\n"""', "x'''\nimport os\n'''", 'a"b', "a'b", "a\\b", "a\nb",
            "import os", "../../etc/x", "/abs", ".hidden", "", "a b", "é", "x" * 65, "a;b", "{a}"]


def generate() -> list[Case]:
    cases: list[Case] = []
    add = cases.append

    # -- run: study keys -----------------------------------------------------------------------------------
    for i, (key, value, path) in enumerate(STUDY_MUTATIONS):
        body = set_path(STUDY, key, value)
        add(Case(f"run-study-{i}-{path}", ["run", "study.yaml"], ("study.yaml", path), {"study.yaml": body}))
    # the same through export (which loads the study before looking for its ledger) and status
    for i, (key, value, path) in enumerate(STUDY_MUTATIONS[::4]):
        body = set_path(STUDY, key, value)
        add(Case(f"export-study-{i}-{path}", ["export", "study.yaml"], ("study.yaml", path), {"study.yaml": body}))
    for i, (key, value, path) in enumerate(STUDY_MUTATIONS[1::9]):
        body = set_path(STUDY, key, value)
        add(Case(f"status-study-{i}-{path}", ["status", "study.yaml"], ("study.yaml", path), {"study.yaml": body}))
    # a bad profile is reported as such
    bad_profile = {**STUDY, "profiles": {"p": {"training": {"lr": -1}}}}
    add(Case("run-profile-lr", ["run", "study.yaml", "--profile", "p"], ("study.yaml", "training.lr", "profile 'p'"),
             {"study.yaml": bad_profile}))
    add(Case("run-profile-missing", ["run", "study.yaml", "--profile", "papr"], ("study.yaml", "profiles"),
             {"study.yaml": bad_profile}))

    # -- run: search-space keys ----------------------------------------------------------------------------
    for i, (key, value, path) in enumerate(SPACE_MUTATIONS):
        body = set_path(SPACE, key, value)
        add(Case(f"run-space-{i}-{path}", ["run", "study.yaml"], ("space.yaml", path), {"space.yaml": body}))
    for i, (key, value, path) in enumerate(SPACE_MUTATIONS[::3]):
        body = set_path(SPACE, key, value)
        add(Case(f"inspect-space-{i}-{path}", ["inspect", "space.yaml"], ("space.yaml", path), {"space.yaml": body}))

    # -- raw files: encodings, malformed YAML, repeated keys -----------------------------------------------
    study_bytes = base_files()["study.yaml"]
    space_bytes = base_files()["space.yaml"]
    spec_bytes = base_files()["spec.yaml"]
    for kind, change in RAW_YAML:
        add(Case(f"run-raw-study-{kind}", ["run", "study.yaml"], ("study.yaml",), {"study.yaml": change(study_bytes)}))
        add(Case(f"run-raw-space-{kind}", ["run", "study.yaml"], ("space.yaml",), {"space.yaml": change(space_bytes)}))
        add(Case(f"inspect-raw-spec-{kind}", ["inspect", "spec.yaml"], ("spec.yaml",), {"spec.yaml": change(spec_bytes)}))
    for kind, change in RAW_YAML[::3]:
        add(Case(f"train-raw-spec-{kind}", ["train", "--spec", "spec.yaml", "--dataset", "imgs", "--steps", "2"],
                 ("spec.yaml",), {"spec.yaml": change(spec_bytes)}))
        add(Case(f"evaluate-raw-spec-{kind}", ["evaluate", "--spec", "spec.yaml", "--task", "denoise", "--dataset",
                                               "imgs"], ("spec.yaml",), {"spec.yaml": change(spec_bytes)}))
        add(Case(f"export-raw-study-{kind}", ["export", "study.yaml"], ("study.yaml",),
                 {"study.yaml": change(study_bytes)}))
    add(Case("run-dup-top", ["run", "study.yaml"], ("study.yaml", "name: duplicate key"),
             {"study.yaml": _dup_study_top(study_bytes)}))
    add(Case("run-dup-nested", ["run", "study.yaml"], ("study.yaml", "training.lr: duplicate key"),
             {"study.yaml": _dup_study_nested(study_bytes)}))
    add(Case("run-dup-space", ["run", "study.yaml"], ("space.yaml", "designs[0].fixed.depth: duplicate key"),
             {"space.yaml": _dup_space(space_bytes)}))
    add(Case("export-dup-nested", ["export", "study.yaml"], ("study.yaml", "training.lr: duplicate key"),
             {"study.yaml": _dup_study_nested(study_bytes)}))
    dup_spec = spec_bytes.replace(b"name: tiny\n", b"name: tiny\nname: other\n", 1)
    for cmd in (["inspect", "spec.yaml"], ["train", "--spec", "spec.yaml", "--dataset", "imgs", "--steps", "2"],
                ["evaluate", "--spec", "spec.yaml", "--task", "denoise", "--dataset", "imgs"]):
        add(Case(f"{cmd[0]}-dup-spec", cmd, ("spec.yaml", "name: duplicate key"), {"spec.yaml": dup_spec}))
    dup_json = b'{"name": "tiny", "name": "x", "in_channels": 1, "out_channels": 1, "blocks": []}'
    add(Case("inspect-dup-json", ["inspect", "spec.json"], ("spec.json", "name: duplicate key"),
             {"spec.json": dup_json}))
    add(Case("inspect-bad-json", ["inspect", "spec.json"], ("spec.json", "malformed JSON"), {"spec.json": b"{"}))
    add(Case("run-folder-as-study", ["run", "imgs"], ("imgs", "is a folder")))
    add(Case("run-missing-study", ["run", "nope.yaml"], ("nope.yaml",)))

    # -- names that would leave the output root or break generated code -------------------------------------
    for i, name in enumerate(_hostile_names()):
        add(Case(f"inspect-spec-name-{i}", ["inspect", "spec.yaml"], ("spec.yaml", "name"),
                 {"spec.yaml": {**SPEC, "name": name}}))
        blocks = copy.deepcopy(SPEC["blocks"])
        blocks[0]["name"] = name
        add(Case(f"inspect-block-name-{i}", ["inspect", "spec.json"], ("spec.json", "blocks[0].name"),
                 {"spec.json": json.dumps({**SPEC, "blocks": blocks})}))
    for i, name in enumerate(_hostile_names()[:6]):
        add(Case(f"train-spec-name-{i}", ["train", "--spec", "spec.yaml", "--dataset", "imgs", "--steps", "2"],
                 ("spec.yaml", "name"), {"spec.yaml": {**SPEC, "name": name}}))
        add(Case(f"evaluate-spec-name-{i}", ["evaluate", "--spec", "spec.yaml", "--task", "denoise", "--dataset",
                                             "imgs"], ("spec.yaml", "name"), {"spec.yaml": {**SPEC, "name": name}}))
        add(Case(f"export-design-name-{i}", ["export", "study.yaml"], ("space.yaml", "designs[0].name"),
                 {"space.yaml": set_path(SPACE, "designs[0].name", name)}))
    for i, (key, value, path) in enumerate([("blocks[0].kernel_size", 4, "blocks[0].kernel_size"),
                             ("blocks[0].type", "convv", "blocks[0].type"),
                             ("blocks[1].channels", 5, "blocks[1].inputs[0]"),
                             ("blocks[2].out_channels", 3, "out_channels"),
                             ("in_channels", 0, "in_channels"),
                             ("blocks[0].kernel_size", float("nan"), "blocks[0].kernel_size"),
                             ("blocks", [], "blocks"),
                             ("global_residual", "both", "global_residual")]):
        add(Case(f"inspect-spec-{i}-{path}", ["inspect", "spec.yaml"], ("spec.yaml", path),
                 {"spec.yaml": set_path(SPEC, key, value)}))
        add(Case(f"train-spec-{i}-{path}", ["train", "--spec", "spec.yaml", "--dataset", "imgs", "--steps", "2"],
                 ("spec.yaml", path), {"spec.yaml": set_path(SPEC, key, value)}))

    # -- data ------------------------------------------------------------------------------------------------
    add(Case("run-patch-larger-than-images", ["run", "study.yaml"], ("study.yaml", "training.patch_size", "a.png"),
             {"study.yaml": set_path(STUDY, "training.patch_size", 64)}))
    add(Case("run-val-crop-below-ssim", ["run", "study.yaml"], ("study.yaml", "training.val_crop", "a.png"),
             {"study.yaml": set_path(STUDY, "training.val_crop", 8)}))
    add(Case("run-test-below-ssim", ["run", "study.yaml"], ("study.yaml", "data.test", "t.png"),
             {"study.yaml": set_path(STUDY, "data.test", "tiny")}))
    add(Case("run-train-tiny", ["run", "study.yaml"], ("study.yaml", "training.patch_size", "t.png"),
             {"study.yaml": set_path(STUDY, "data.train", "tiny")}))
    add(Case("run-corrupt-data", ["run", "study.yaml"], ("study.yaml", "data.train", "x.png", "unreadable"),
             {"study.yaml": set_path(STUDY, "data.train", "corrupt")}))
    add(Case("run-empty-data", ["run", "study.yaml"], ("study.yaml", "data.val", "empty", "empty dataset"),
             {"study.yaml": set_path(STUDY, "data.val", "empty")}))
    for dataset, expect in (("tiny", ("t.png", "11x11")), ("wide", ("w.png", "SSIM")), ("corrupt", ("x.png",)),
                            ("empty", ("empty",)), ("no/such/folder", ("no/such/folder",)), ("Set12", ("Set12",))):
        add(Case(f"evaluate-data-{dataset}", ["evaluate", "--zoo", "convnet_fig4", "--dataset", dataset],
                 ("--dataset", *expect)))
    add(Case("evaluate-sr-border", ["evaluate", "--zoo", "srcnn", "--task", "sr", "--scale", "4", "--dataset", "wide"],
             ("--dataset", "w.png", "border")))
    for dataset, expect in (("tiny", ("t.png", "--patch-size")), ("corrupt", ("--dataset", "x.png")),
                            ("empty", ("--dataset", "empty"))):
        add(Case(f"train-data-{dataset}", ["train", "--zoo", "convnet_fig4", "--dataset", dataset, "--val-dataset",
                                           "none", "--steps", "2"], expect))
    add(Case("train-val-tiny", ["train", "--zoo", "convnet_fig4", "--dataset", "imgs", "--val-dataset", "tiny",
                                "--patch-size", "24", "--steps", "2"], ("t.png", "--val-dataset")))
    add(Case("train-val-crop-below-ssim", ["train", "--zoo", "convnet_fig4", "--dataset", "imgs", "--val-dataset",
                                           "imgs", "--patch-size", "24", "--steps", "2", "--val-crop", "5"],
             ("a.png", "--val-crop")))

    # -- command-line arguments -------------------------------------------------------------------------------
    ev = ["evaluate", "--zoo", "convnet_fig4", "--dataset", "imgs"]
    for extra, expect in [
        (["--seed", "-1"], ("--seed",)), (["--seed", "2147483648"], ("--seed",)), (["--seed", "abc"], ("--seed",)),
        (["--tile", "0"], ("--tile",)), (["--tile", "-8"], ("--tile",)), (["--overlap", "-1"], ("--overlap",)),
        (["--sigma", "300"], ("--sigma",)), (["--sigma", "nan"], ("--sigma",)), (["--sigma", "inf"], ("--sigma",)),
        (["--task", "jpeg", "--quality", "0"], ("--quality",)), (["--task", "sr", "--scale", "5"], ("--scale",)),
        (["--channels", "2"], ("--channels",)), (["--device", "tpu"], ("--device",)),
        (["--weights", "missing.pt"], ("--weights missing.pt",)), (["--weights", "garbage.pt"], ("--weights garbage.pt",)),
        (["--weights", "empty.pt"], ("--weights empty.pt",)),
        (["--weights", "mismatch.safetensors"], ("--weights mismatch.safetensors",)),
        (["--weights", "imgs"], ("--weights imgs",)), (["--protocol", "matlab"], ("--protocol",)),
        (["--format", "xml"], ("--format",)), (["--zoo", "dncnn"], ("dncnn",)), (["--bogus"], ("--bogus",)),
    ]:
        add(Case(f"evaluate-arg-{'_'.join(extra)}", ev + extra, expect))
    tr = ["train", "--zoo", "convnet_fig4", "--dataset", "imgs", "--val-dataset", "none", "--patch-size", "24",
          "--steps", "2"]
    for extra, expect in [
        (["--seed", "-1"], ("--seed",)), (["--seed", "99999999999999999999"], ("--seed",)),
        (["--val-crop", "0"], ("--val-crop",)), (["--steps", "0"], ("--steps",)),
        (["--steps", "100000000000000000000"], ("--steps",)), (["--lr", "-1"], ("--lr",)),
        (["--lr", "inf"], ("--lr",)), (["--lr", "nan"], ("--lr",)), (["--batch-size", "0"], ("--batch-size",)),
        (["--patch-size", "0"], ("--patch-size",)), (["--grad-clip", "0"], ("--grad-clip",)),
        (["--val-every", "-1"], ("--val-every",)), (["--device", "tpu"], ("--device",)),
        (["--schedule", "cosinee"], ("--schedule",)), (["--loss", "l3"], ("--loss",)),
        (["--out", "/proc/archsearch-fuzz/x.pt"], ("--out", "/proc/archsearch-fuzz/x.pt")),
        (["--out", "imgs"], ("--out", "imgs")), (["--out", "notes.txt/x.pt"], ("--out", "notes.txt")),
        (["--sigma", "-5"], ("--sigma",)), (["--task", "sr", "--scale", "9"], ("--scale",)),
        (["--task", "deblur"], ("--task", "deblur")),
        (["--zoo", "nosuch"], ("nosuch",)), (["--patch-size", "1000"], ("--patch-size", "a.png")),
    ]:
        add(Case(f"train-arg-{'_'.join(extra)}", tr + extra, expect))
    add(Case("train-no-model", ["train", "--dataset", "imgs"], ("--zoo",)))
    ex = ["export", "--zoo", "srcnn", "--out", "exp"]
    for extra, expect in [
        (["--format", "pt"], ("--format", "pt")), (["--format", "py,pt"], ("--format",)),
        (["--weights", "missing.pt"], ("--weights missing.pt",)), (["--weights", "garbage.pt"], ("--weights garbage.pt",)),
        (["--weights", "empty.pt"], ("--weights empty.pt",)),
        (["--weights", "mismatch.safetensors"], ("--weights mismatch.safetensors",)),
        (["--weights", "imgs"], ("--weights imgs",)), (["--zoo", "dncnn"], ("dncnn",)),
        (["--out", "notes.txt"], ("--out", "notes.txt")), (["--out", "/proc/archsearch-fuzz"], ("--out",)),
    ]:
        add(Case(f"export-arg-{'_'.join(extra)}", ex + extra, expect))
    add(Case("export-neither", ["export"], ("--zoo",)))
    add(Case("export-both", ["export", "study.yaml", "--zoo", "srcnn"], ("--zoo",)))
    add(Case("export-bad-trial", ["export", "study.yaml", "--trial", "bestest"], ("--trial", "bestest")))
    for extra, expect in [
        (["srcnn", "--input-size", "0x5"], ("--input-size",)), (["srcnn", "--input-size", "abc"], ("--input-size",)),
        (["space.yaml", "--budget", "-1"], ("--budget",)), (["space.yaml", "--budget", "inf"], ("--budget",)),
        (["space.yaml", "--budget", "nan"], ("--budget",)), (["space.yaml", "--budget", "10"], ("--budget", "space.yaml", "convnet")),
        (["space.yaml", "--budget-metric", "flops"], ("--budget-metric",)), (["nosuch_model"], ("nosuch_model",)),
        (["missing.yaml"], ("missing.yaml",)), ([], ("inspect",)), (["imgs/a.png"], ("a.png",)),
    ]:
        add(Case(f"inspect-arg-{'_'.join(extra) or 'none'}", ["inspect", *extra], expect))
    for extra, expect in [
        (["--workers", "0"], ("--workers",)), (["--workers", "-1"], ("--workers",)),
        (["--executor", "slurm"], ("--executor",)), (["--output-dir", "runs"], ("--output-dir", "runs")),
        (["--output-dir", "."], ("--output-dir",)), (["--output-dir", "/"], ("--output-dir",)),
        (["--output-dir", "notes.txt"], ("--output-dir", "notes.txt")),
    ]:
        add(Case(f"run-arg-{'_'.join(extra)}", ["run", "study.yaml", *extra], expect))

    # -- the run lock, --fresh and status: nothing is locked or deleted before the checks pass ------
    add(Case("run-unmeetable-budget-no-lock", ["run", "study.yaml"], ("study.yaml: budget:",),  # lead: no lock
             {"study.yaml": set_path(STUDY, "budget.value", 10)}))
    add(Case("run-unknown-dataset-no-lock", ["run", "study.yaml"], ("study.yaml", "data.train", "nosuchset"),  # lead
             {"study.yaml": set_path(STUDY, "data.train", "nosuchset")}))
    add(Case("run-fresh-foreign-folder", ["run", "study.yaml", "--fresh"], ("--fresh", "mine"),  # lead: marker
             {"study.yaml": set_path(STUDY, "output_dir", "mine"), "mine/thesis.tex": b"precious\n",
              "mine/checkpoints/keep.bin": b"\x00\x01"}))
    add(Case("status-never-run", ["status", "study.yaml"], ("fz",)))  # lead: status of a never-run study creates nothing
    add(Case("export-never-run", ["export", "study.yaml"], ("fz",)))  # lead: as status
    return cases


CASES = generate()


def test_the_fuzz_covers_enough_cases_and_every_command():
    assert len(CASES) >= 150, len(CASES)
    commands = {c.argv[0] for c in CASES}
    assert {"run", "inspect", "export", "evaluate", "train"} <= commands
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARCHSEARCH_DATA_ROOT", raising=False)
    for rel, content in base_files().items():
        _write(tmp_path, rel, content)
    for rel, content in case.files.items():
        _write(tmp_path, rel, content)
    if case.setup:
        case.setup(tmp_path)
    before = snapshot(tmp_path)
    try:
        code = main(list(case.argv))
    except SystemExit as exit_:  # argparse
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}\n{err[-2000:]}"
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    line = lines[0]
    assert line.startswith(f"archsearch {case.argv[0]}: error: "), line
    for fragment in case.expect:
        assert fragment in line, f"{fragment!r} not in: {line}"
    for secret in ("tiger", "s3cr3t"):
        assert secret not in line, line
    assert snapshot(tmp_path) == before, "the command wrote or deleted files"
    assert not list(tmp_path.rglob("PWNED"))
