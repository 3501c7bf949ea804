"""Export a spec (a zoo model or a study's trial) as a standalone model that needs torch only.

``export_model(spec, out_dir, state_dict=...)`` writes:

* ``<name>.py`` -- generated Python: ``class Net(nn.Module)`` with the spec's blocks and an explicit ``forward``,
  plus only the helper modules those blocks need; it imports ``torch`` (and ``safetensors`` lazily, in
  ``Net.from_safetensors``), never archsearch. The module names equal the framework's (``blocks.<node>``), so the
  framework's state dict loads as is;
* ``<name>.safetensors`` -- the weights (no pickled code: safetensors stores tensors only);
* ``<name>.yaml`` -- the spec, and ``<name>.json`` -- its hash, counts and provenance;
* optionally ``<name>.pt2`` (``torch.export`` of ``Net``, saved with ``torch.export.save``: load it with
  ``torch.export.load(path).module()``), ``<name>.onnx`` (the dynamo exporter, opset :data:`ONNX_OPSET`) and
  ``<name>.torchscript.pt`` (``torch.jit.trace``; deprecated by PyTorch, kept while the pinned torch ships it).
  ``.pt2`` and ONNX keep batch, height and width dynamic where every block allows (:func:`export_dims`, from
  each block's :meth:`~archsearch.spec.Block.export_limits`); the ``.json`` says which dimensions are dynamic,
  the constraints and reasons, and which ONNX exporter and opset wrote the file.

The files of one export are written together or not at all (:func:`archsearch.atomic.atomic_folder`): a kill,
a full disk or a failing ONNX export leaves the previous export of that name complete, never new ``.py`` and
``.safetensors`` beside an old ``.onnx`` and ``.json``; a re-export removes that name's files it does not write
again (they would describe other weights). Other files in the folder are kept.

Security: weights are written and read with safetensors, or ``torch.load(weights_only=True)``; the generated file
holds code for the chosen architecture only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import inspect
import io
import logging
import math
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

FORMATS = ("py", "pt2", "onnx", "torchscript")

#: The ONNX opset of the dynamo exporter: the highest that onnxscript's version converter writes and that the
#: onnxruntime of the ``dev`` extra runs (``tests/test_export.py`` runs every zoo model's file in it).
ONNX_OPSET = 25
#: The legacy TorchScript-based exporter's opset (the fallback for blocks whose ``export_limits`` name a reason).
ONNX_LEGACY_OPSET = 17

#: The exact deprecation warnings PyTorch gives for ``torch.jit.trace``/``trace_method``/``load``/``save``:
#: silenced around archsearch's own TorchScript calls only (never globally).
JIT_DEPRECATED = r"`torch\.jit\.\w+` is deprecated"
#: ``torch.export`` of torch 2.13 copies pytree specs through a path that warns about its own deprecated ``LeafSpec``
#: check (a FutureWarning from inside torch): silenced around archsearch's export calls only.
TREESPEC_DEPRECATED = r"`isinstance\(treespec, LeafSpec\)` is deprecated"

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


@dataclasses.dataclass(frozen=True)
class ExportDims:
    """The input dimensions a ``.pt2`` / ONNX export of a spec keeps dynamic (:func:`export_dims`).

    ``batch``: dynamic batch; ``size_multiple``: height and width dynamic, each a multiple of it (1: any size),
    or ``None``: fixed to the example's; ``min_size``: the least height and width; ``reasons``: why, per constraining block; ``onnx_batch``: the ONNX file
    keeps the batch dynamic too; ``onnx_legacy``: why ONNX goes through the legacy exporter ("": dynamo)."""

    batch: bool
    size_multiple: int | None
    min_size: int = 2
    reasons: tuple[str, ...] = ()
    onnx_batch: bool = True
    onnx_legacy: str = ""

    def for_onnx(self) -> ExportDims:
        """The dimensions of the ONNX file: these, with the batch fixed where ONNX cannot keep it."""
        return dataclasses.replace(self, batch=self.batch and self.onnx_batch)

    def describe(self) -> dict[str, Any]:
        """The ``.json``'s form: each dimension as ``"dynamic"``, ``"dynamic, multiple of N"`` or ``"fixed"``."""
        size = ("fixed" if self.size_multiple is None else "dynamic" if self.size_multiple == 1
                else f"dynamic, multiple of {self.size_multiple}")
        if self.size_multiple is not None and self.min_size > 2:
            size += f", at least {self.min_size}"
        return {"batch": "dynamic" if self.batch else "fixed", "height": size, "width": size,
                "reasons": list(self.reasons)}

    def example(self, in_channels: int, size: tuple[int, int]) -> torch.Tensor:
        """An input to export with: batch 2 when it is dynamic (torch.export specialises sizes 0 and 1), else 1;
        ``size`` rounded up to the multiple (and to at least 2 of it)."""
        m = self.size_multiple or 1
        h, w = (-(-max(v, self.min_size, 2 * m) // m) * m for v in size)
        return torch.rand(2 if self.batch else 1, in_channels, h, w, generator=torch.Generator().manual_seed(0))

    def dynamic_shapes(self) -> dict[int, Any]:
        """``torch.export`` dynamic shapes of the input: ``Dim``s, derived (``m * Dim``) for a size multiple."""
        from torch.export import Dim

        dims: dict[int, Any] = {}
        if self.batch:
            dims[0] = Dim("batch", min=1)
        m = self.size_multiple
        if m == 1:
            dims[2], dims[3] = Dim("height", min=self.min_size), Dim("width", min=self.min_size)
        elif m is not None:
            low = max(1, -(-self.min_size // m))
            dims[2], dims[3] = m * Dim(f"height_div{m}", min=low), m * Dim(f"width_div{m}", min=low)
        return dims


def export_dims(spec: GraphSpec) -> ExportDims:
    """What every block of ``spec`` allows (:meth:`~archsearch.spec.Block.export_limits`): batch dynamic when
    all allow it; height and width dynamic when all allow it, a multiple of the least common multiple of the
    blocks' multiples at the network input (a block behind a x2 upsampler needing multiples of 8 needs 4 at the
    input); the first block that asks for the legacy ONNX exporter names the reason."""
    batch, onnx_batch, multiple, low, reasons, legacy = True, True, 1, 2, [], ""
    for node in spec.nodes:
        lim = node.block.export_limits()
        if lim.reason:
            reasons.append(f"{node.block.type}: {lim.reason}")  # once per block type and reason
        batch = batch and lim.batch
        onnx_batch = onnx_batch and lim.onnx_batch
        low = max(low, -(-lim.min_size // spec.node_input_scale(node)))
        if lim.size_multiple is None or multiple is None:
            multiple = None
        else:
            m = lim.size_multiple // math.gcd(lim.size_multiple, spec.node_input_scale(node))
            multiple = multiple * m // math.gcd(multiple, m)
        if lim.onnx_legacy and not legacy:
            legacy = f"{node.block.type}: {lim.onnx_legacy}"
    return ExportDims(batch, multiple, low, tuple(dict.fromkeys(reasons)), onnx_batch, legacy)


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
    own = {f"{name}{ext}" for ext in (".py", ".safetensors", ".yaml", ".json", ".pt2", ".torchscript.pt", ".onnx")}
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
    if set(formats) & {"pt2", "onnx", "torchscript"}:
        net = load_standalone(paths["py"]).Net()
        net.load_state_dict(tensors, strict=True)
        net.eval()
        dims = export_dims(spec)
        example = dims.example(spec.in_channels, example_size)
        program = None
        if "pt2" in formats:
            paths["pt2"] = out / f"{name}.pt2"
            program = _export_program(net, example, dims)
            with _quiet_treespec():
                torch.export.save(program, str(paths["pt2"]))
            info["pt2"] = dims.describe()
        if "onnx" in formats:
            paths["onnx"] = out / f"{name}.onnx"
            onnx_dims = dims.for_onnx()
            if onnx_dims != dims:
                program, example = None, onnx_dims.example(spec.in_channels, example_size)
            info["onnx"] = _export_onnx(net, example, onnx_dims, paths["onnx"], program)
        if "torchscript" in formats:
            paths["torchscript"] = out / f"{name}.torchscript.pt"
            _export_torchscript(net, example[:1], paths["torchscript"])
    info["files"] = {k: p.name for k, p in paths.items()}
    paths["info"].write_text(json_text(info, indent=2))
    return paths


@contextlib.contextmanager
def quiet_jit():
    """Silence exactly PyTorch's ``torch.jit.*`` deprecation warnings (:data:`JIT_DEPRECATED`) in the body: for
    archsearch's own TorchScript calls, so they do not reach a user's terminal or a test run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=JIT_DEPRECATED, category=DeprecationWarning)
        yield


def _export_torchscript(net, example, path: Path) -> None:
    """``torch.jit.trace`` of the standalone ``Net`` (deprecated by PyTorch; ``.pt2`` is its successor)."""
    with quiet_jit(), torch.no_grad():
        traced = torch.jit.trace(net, example, check_trace=False)
        traced.save(str(path))


def _export_program(net, example, dims: ExportDims):
    """``torch.export.export`` of the standalone ``Net`` on ``example`` with :meth:`ExportDims.dynamic_shapes`."""
    with _quiet_treespec(), torch.no_grad():
        return torch.export.export(net, (example,), dynamic_shapes={"x": dims.dynamic_shapes()})


@contextlib.contextmanager
def _quiet_treespec():
    """Silence exactly torch's own ``LeafSpec`` FutureWarning (:data:`TREESPEC_DEPRECATED`) in the body."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TREESPEC_DEPRECATED, category=FutureWarning)
        yield


@contextlib.contextmanager
def _quiet_onnx():
    """The dynamo exporter's chatter, for this call only: its registry logs one warning per torchvision operator
    when torchvision is absent, and the exporter prints its progress to stdout."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        log.setLevel(level)


def _export_onnx(net, example, dims: ExportDims, path: Path, program=None) -> dict[str, Any]:
    """ONNX through the dynamo exporter (``torch.export`` then onnxscript) at :data:`ONNX_OPSET`, with the
    dynamic dimensions of ``dims``; through the legacy TorchScript-based exporter only where a block asks for it
    (``dims.onnx_legacy``, the reason). ``program``: the ``.pt2``'s exported program when it has these ``dims``
    (exported once for both). Returns the ``.json``'s ``onnx`` entry (exporter, opset, dimensions)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ArchsearchError('ONNX export needs the onnx package: pip install "archsearch[onnx]"') from None
    names = {2: "height", 3: "width"}
    if dims.onnx_legacy:
        # traced by torch.jit: the batch is a constant of the graph (NSR's groups = batch), so only height and width
        axes = {i: names[i] for i in ((2, 3) if dims.size_multiple is not None else ())}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's own deprecation and tracer warnings
            torch.onnx.export(net, (example[:1],), str(path), dynamo=False, opset_version=ONNX_LEGACY_OPSET,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": axes, "output": axes})
        return {"exporter": "legacy", "opset": ONNX_LEGACY_OPSET, "reason": dims.onnx_legacy, "batch": "fixed",
                "height": "dynamic" if axes else "fixed", "width": "dynamic" if axes else "fixed"}
    if importlib.util.find_spec("onnxscript") is None:
        raise ArchsearchError('ONNX export needs the onnxscript package (the dynamo exporter): '
                              'pip install "archsearch[onnx]"')
    with _quiet_onnx(), _quiet_treespec(), torch.no_grad():
        program = program if program is not None else _export_program(net, example, dims)
        program = torch.onnx.export(program, (example,), None, dynamo=True,
                                    opset_version=ONNX_OPSET, input_names=["input"], output_names=["output"],
                                    optimize=True, verbose=False)
        program.save(str(path))
    return {"exporter": "dynamo", "opset": ONNX_OPSET, **dims.describe()}
