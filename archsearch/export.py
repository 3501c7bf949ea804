"""Export a spec (a zoo model or a study's trial) as a standalone model that needs torch only.

``export_model(spec, out_dir, state_dict=...)`` writes:

* ``<name>.py`` -- generated Python: ``class Net(nn.Module)`` with the spec's blocks and an explicit ``forward``,
  plus only the helper modules those blocks need; it imports ``torch`` (and ``safetensors`` lazily, in
  ``Net.from_safetensors``), never archsearch. The module names equal the framework's (``blocks.<node>``), so the
  framework's state dict loads as is;
* ``<name>.safetensors`` -- the weights (no pickled code: safetensors stores tensors only);
* ``<name>.yaml`` -- the spec, and ``<name>.json`` -- its hash, counts and provenance;
* optionally ``<name>.torchscript.pt`` (``torch.jit.trace`` of ``Net``) and ``<name>.onnx`` (opset 17, dynamic
  height and width; batch fixed to 1 because NSR blocks aggregate a kernel per image).

The files of one export are written together or not at all (:func:`archsearch.atomic.atomic_folder`): a kill,
a full disk or a failing ONNX export leaves the previous export of that name complete, never new ``.py`` and
``.safetensors`` beside an old ``.onnx`` and ``.json``; a re-export removes that name's files it does not write
again (they would describe other weights). Other files in the folder are kept.

Security: weights are written and read with safetensors, or ``torch.load(weights_only=True)``; the generated file
holds code for the chosen architecture only.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import textwrap
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .atomic import atomic_folder
from .builder import build
from .counting import count
from .errors import ArchsearchError, SpecError
from .spec import INPUT, GraphSpec, check_name
from .text import json_text
from .weights import apply_weights

FORMATS = ("py", "torchscript", "onnx")

#: The base name of the exported files: the safe-name characters (``archsearch.spec.SAFE_NAME``), longer, since
#: a study's trial exports are named ``<study>-<profile>_trial<n>``.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}", re.ASCII)


class _Context:
    """Collects the helper sources a generated file needs, each once, in first-use order (``Block.export``)."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}

    def need(self, obj: Any) -> str:
        name = obj.__name__
        if name not in self.sources:
            self.sources[name] = textwrap.dedent(inspect.getsource(obj))
        return name


def _ident(name: str, used: set[str]) -> str:
    """A local-variable name for a node: ``v_`` + the name with every non-ASCII-word character replaced."""
    base = "v_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
    ident, i = base, 1
    while ident in used:
        i += 1
        ident = f"{base}_{i}"
    used.add(ident)
    return ident


def python_source(spec: GraphSpec) -> str:
    """The standalone module for ``spec`` (see the module docstring).

    User text reaches the file in two forms only: names checked against :data:`~archsearch.spec.SAFE_NAME` (spec
    and block names; no quotes, backslashes, spaces or newlines can pass) and ``repr`` string literals (block
    names as ``ModuleDict`` keys, ``SPEC_NAME``, string fields through ``Block.namespace``). The spec's
    description is not written. Nothing user-supplied is pasted unchecked.
    """
    check_name(spec.name, "name")  # already checked by GraphSpec; again here, the last gate before code
    for i, node in enumerate(spec.nodes):
        check_name(node.name, f"blocks[{i}].name", dots=False)
    ctx = _Context()
    ctors = [(node.name, node.block.export(ctx)) for node in spec.nodes]
    c = count(spec)
    used: set[str] = {"x"}
    var = {INPUT: "x"}
    lines = []
    for node in spec.nodes:
        var[node.name] = _ident(node.name, used)
        args = ", ".join(var[s] for s in node.inputs)
        lines.append(f"        {var[node.name]} = self.blocks[{node.name!r}]({args})")
    doc = (f"{spec.name}: a standalone restoration network exported by archsearch (needs torch only).\n\n"
           f"spec hash {spec.hash}; {c.params:,} parameters; {c.macs_per_pixel:,.1f} MACs per output pixel;\n"
           f"{c.activation_param_pct:.2f}% of the parameters in activations; input {spec.in_channels} channel(s), "
           f"output\n{spec.out_channels} channel(s), scale {spec.scale}.\n\n"
           f"    model = Net.from_safetensors(\"{spec.name}.safetensors\").eval()\n"
           f"    restored = model(degraded)  # (N, {spec.in_channels}, H, W) in [0, 1]\n")
    out = var[spec.output]
    if spec.global_residual == "subtract":
        lines.append(f"        return x - {out}  # global residual: the body predicts the noise")
    elif spec.global_residual == "add":
        lines.append(f"        return x + {out}  # global residual")
    else:
        lines.append(f"        return {out}")
    helpers = "\n\n".join(ctx.sources.values())
    body = "\n".join(f"        ({name!r}, {expr})," for name, expr in ctors)
    return f'''"""{doc}"""

from __future__ import annotations

import math  # noqa: F401  (used by some blocks)
from types import SimpleNamespace  # noqa: F401

import torch  # noqa: F401
import torch.nn.functional as F  # noqa: F401
from torch import nn

SPEC_NAME = {spec.name!r}
SPEC_HASH = {spec.hash!r}

{helpers}


class Net(nn.Module):
    in_channels = {spec.in_channels}
    out_channels = {spec.out_channels}
    scale = {spec.scale}

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleDict([
{body}
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
{chr(10).join(lines)}

    @classmethod
    def from_safetensors(cls, path: str) -> "Net":
        from safetensors.torch import load_file  # tensors only: no code is unpickled

        net = cls()
        net.load_state_dict(load_file(path), strict=True)
        return net
'''


def load_standalone(path: str | Path):
    """Import a generated file as a module (for tests and quick checks)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem.replace(".", "_"), path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def export_model(spec: GraphSpec, out_dir: str | Path, *, state_dict: dict | None = None,
                 formats: tuple[str, ...] = ("py",), name: str | None = None, provenance: dict | None = None,
                 example_size: tuple[int, int] = (64, 64), weights_source: str = "") -> dict[str, Path]:
    """Write the standalone files of ``spec`` (weights from ``state_dict``, else a fresh initialisation).
    Everything is checked before anything is written: formats, the file name, weights that do not fit (errors
    name ``weights_source``, the file they came from)."""
    for f in formats:
        if f not in FORMATS:
            raise ArchsearchError(f"unknown export format {f!r}; allowed: {', '.join(FORMATS)}")
    name = name or spec.name
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):  # a file name inside out_dir, nothing else
        raise SpecError("name", f"must be a file name of 1-200 ASCII letters, digits, '_', '-' or '.', not starting "
                                f"with '.' or '-', got {name!r}")
    model = build(spec).eval()
    if state_dict is not None:  # before anything is written: weights that do not fit leave no folder behind

        apply_weights(model, state_dict, f"--weights {weights_source}" if weights_source else "--weights")
    out = Path(out_dir)
    # this export's files, from any earlier export of the same name: replaced as one set
    own = {f"{name}{ext}" for ext in (".py", ".safetensors", ".yaml", ".json", ".torchscript.pt", ".onnx")}
    with atomic_folder(out, keep=lambda n: n not in own and not n.startswith(f"{name}.onnx")) as tmp:
        paths = _write(spec, model, tmp, name, formats, provenance, example_size)
    return {k: out / p.name for k, p in paths.items()}


def _write(spec: GraphSpec, model, out: Path, name: str, formats: tuple[str, ...], provenance: dict | None,
           example_size: tuple[int, int]) -> dict[str, Path]:
    paths = {"py": out / f"{name}.py", "weights": out / f"{name}.safetensors", "spec": out / f"{name}.yaml",
             "info": out / f"{name}.json"}
    paths["py"].write_text(python_source(spec))
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(paths["weights"]), metadata={"spec_hash": spec.hash})
    spec.save(paths["spec"])
    c = count(spec)
    info = {"name": name, "spec_hash": spec.hash, **c.as_dict(), "scale": spec.scale,
            "in_channels": spec.in_channels, "out_channels": spec.out_channels, "files": {}}
    info.update(provenance or {})
    if "torchscript" in formats or "onnx" in formats:
        net = load_standalone(paths["py"]).Net()
        net.load_state_dict(tensors, strict=True)
        net.eval()
        h, w = example_size
        example = torch.rand(1, spec.in_channels, h, w)
        if "torchscript" in formats:
            paths["torchscript"] = out / f"{name}.torchscript.pt"
            with torch.no_grad():
                traced = torch.jit.trace(net, example, check_trace=False)
            traced.save(str(paths["torchscript"]))
        if "onnx" in formats:
            paths["onnx"] = out / f"{name}.onnx"
            _export_onnx(net, example, paths["onnx"])
    info["files"] = {k: p.name for k, p in paths.items()}
    paths["info"].write_text(json_text(info, indent=2))
    return paths


def _export_onnx(net, example, path: Path) -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ArchsearchError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter: the dynamo one cannot yet trace NSR's per-image kernels.
        torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["output"],
                          dynamic_axes={"input": {2: "height", 3: "width"}, "output": {2: "height", 3: "width"}})
