"""The graph spec: one typed, immutable, serializable description of an architecture.

A :class:`GraphSpec` is a list of named nodes; each node holds one block (a frozen dataclass from the block
registry) and the names of the nodes it reads. Edges are data flow: a node reads the previous node by default
(sequential), several nodes for an ``add`` (skip/residual) or ``concat`` block, or a list of earlier states
(MemNet's dense long-term memory). ``global_residual`` adds or subtracts the network input at the end
(``subtract``: the body predicts the noise, as in DnCNN).

The builder (:mod:`archsearch.builder`), the counters (:mod:`archsearch.counting`), the budget solver, the
exporter and the trial ledger all read this one object; nothing here builds a module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from .atomic import write_text
from .errors import RegistryError, SpecError, did_you_mean
from .registry import Registry
from .schema import coerce, describe, load_yaml, read_text_file
from .text import json_text

#: The one safe pattern for user-chosen names: specs, blocks (graph nodes), studies, designs, profiles. ASCII
#: letters, digits, ``_``, ``-`` and ``.``, 1 to 64 characters, not starting with ``.`` or ``-``. A name that
#: matches can be a file or folder name (never ``..``, never absolute, no separators) and sits safely inside
#: generated Python (no quotes, backslashes, spaces or newlines). Block names additionally contain no ``.``
#: (PyTorch module names).
SAFE_NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"
SAFE_NAME = re.compile(SAFE_NAME_PATTERN, re.ASCII)
SAFE_NAME_RULE = ("1-64 ASCII letters, digits, '_', '-' or '.', not starting with '.' or '-' "
                  f"(pattern {SAFE_NAME_PATTERN})")


BLOCK_NAME_RULE = "1-64 ASCII letters, digits, '_' or '-', not starting with '-' (pattern [A-Za-z0-9_][A-Za-z0-9_-]{0,63})"


def check_name(name: Any, path: str = "name", *, dots: bool = True) -> str:
    """``name`` if it matches :data:`SAFE_NAME` (and has no ``.`` when ``dots`` is false: block names), else a
    :class:`SpecError` at ``path`` stating the rule."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or (not dots and "." in name):
        raise SpecError(path, f"must be a name of {SAFE_NAME_RULE if dots else BLOCK_NAME_RULE}, got {name!r}")
    return name

#: Parameter roles. ``activation`` is what the xUnit paper counts as "parameters invested in activations".
ROLES = ("conv", "activation", "normalization", "selection", "gate", "other")

GLOBAL_RESIDUALS = ("none", "add", "subtract")


# --------------------------------------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportLimits:
    """Which input dimensions an exported copy of a block keeps symbolic (:meth:`Block.export_limits`, read by
    :func:`archsearch.export.export_dims` for ``.pt2`` and ONNX).

    * ``batch`` -- the batch size stays dynamic (False: the export is for the example's batch only);
    * ``size_multiple`` -- height and width stay dynamic, each a multiple of this at the block's input (1: any
      size); ``None``: height and width are fixed to the example's;
    * ``min_size`` -- the least height and width at the block's input (torch.export specialises sizes 0 and 1);
    * ``reason`` -- why a dimension is fixed or constrained (shown in the export's ``.json`` and the docs);
    * ``onnx_batch`` -- False: the ONNX file fixes the batch (to 1) even where ``.pt2`` keeps it dynamic;
    * ``onnx_legacy`` -- non-empty: ONNX goes through the legacy TorchScript-based exporter, for this reason.
    """

    batch: bool = True
    size_multiple: int | None = 1
    min_size: int = 2
    reason: str = ""
    onnx_batch: bool = True
    onnx_legacy: str = ""


@dataclass(frozen=True)
class Block:
    """Base of every block: a frozen dataclass whose fields are the block's hyperparameters.

    Subclasses set ``type`` (the registry name) and ``paper`` (what the block reproduces), and implement:

    * ``input_channels`` -- channels of each input (one entry per input edge);
    * ``out_channels``;
    * ``params_by_role()`` -- trainable parameters by role (shared weights counted once);
    * ``macs_per_pixel()`` -- multiply-accumulates per *input* pixel of the block, as an exact ``Fraction``
      (the per-pixel rate; terms paid once per image are in ``macs``, not here);
    * ``macs(h, w)`` -- exact MACs for one image whose block input is h x w (default: rate x h x w);
    * ``build()`` -- the ``nn.Module`` (its ``forward`` takes one tensor per input edge);
    * ``check()`` -- raise ``SpecError(field_name, ...)`` on values that break a rule;
    * ``examples()`` -- a few small instances (:class:`BlockExample`) that the contract test kit
      (``archsearch.testing.blocks``) runs every behavioural check on; a registered type without one fails there.

    ``scale`` is the spatial factor output/input (2 for a x2 pixel-shuffle upsampler).
    """

    type: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    scale: ClassVar[int] = 1

    def __post_init__(self) -> None:
        for name, tp in _field_types(type(self)).items():
            ok, value = coerce(tp, getattr(self, name))
            if not ok:
                raise SpecError(name, f"must be {describe(tp)}, got {getattr(self, name)!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise SpecError(name, f"must be a finite number, got {value!r}")
            if value is not getattr(self, name):
                object.__setattr__(self, name, value)
        self.check()

    # -- interface ------------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise :class:`SpecError` (path = field name) when a rule between fields is broken."""

    # ``input_channels`` (tuple) and ``out_channels`` (int) are given by each subclass, as a field or a
    # property: a property here would shadow the dataclass field of the same name.

    def params_by_role(self) -> dict[str, int]:
        raise NotImplementedError

    def macs_per_pixel(self) -> Fraction:
        raise NotImplementedError

    def macs(self, h: int, w: int) -> int:
        total = self.macs_per_pixel() * h * w
        return int(total)

    def build(self):  # -> torch.nn.Module
        raise NotImplementedError

    @classmethod
    def examples(cls) -> list[BlockExample]:
        """Small instances of this block for the contract tests (house style: <= 16 channels; inputs <= 32 x 32).
        Data only: the block file declares them next to the block, so a new block needs no edit to the tests."""
        return []

    def export(self, ctx) -> str:
        """Python source (torch only) constructing a module identical in structure to ``build()``; helper
        classes go through ``ctx.need(obj)``, which copies their source into the generated file once."""
        raise NotImplementedError(f"block {self.type!r} cannot be exported: implement `export`")

    def export_limits(self) -> ExportLimits:
        """What a ``torch.export`` of this block's module keeps dynamic (default: batch, height and width, any
        size). A block whose forward specialises a dimension (a conv whose ``groups`` is the batch, a padding that
        depends on the size modulo the stride) says so here, with the reason."""
        return ExportLimits()

    def namespace(self, *derived: str) -> str:
        """``SimpleNamespace(...)`` source with the fields (and ``derived`` properties) a module reads."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update({name: getattr(self, name) for name in derived})
        return "SimpleNamespace(" + ", ".join(f"{k}={v!r}" for k, v in values.items()) + ")"

    # -- helpers ----------------------------------------------------------------------------------------
    def params(self) -> int:
        return sum(self.params_by_role().values())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def replace(self, **changes: Any) -> Block:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class BlockExample:
    """One small instance of a block type and the input size (h, w) to run it at; the default size is non-square
    on purpose (it catches h/w mix-ups)."""

    id: str
    block: Block
    size: tuple[int, int] = (12, 10)


_FIELD_TYPES: dict[type, dict[str, Any]] = {}


def _field_types(cls: type) -> dict[str, Any]:
    cached = _FIELD_TYPES.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        cached = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
        _FIELD_TYPES[cls] = cached
    return cached


#: The block registry: type name -> block class (:func:`register_block` adds to it).
BLOCKS: Registry[type[Block]] = Registry("block type")


def register_block(cls: type[Block]) -> type[Block]:
    """Class decorator adding a block to the registry; a name can be registered once."""
    if not cls.type:
        raise RegistryError(f"{cls.__name__} has no `type` name")
    if cls.type in BLOCKS:
        raise RegistryError(f"block type {cls.type!r} is already registered by {BLOCKS.get(cls.type).__name__}")
    return BLOCKS.add(cls.type, cls)


def block_types() -> dict[str, type[Block]]:
    """The registered block classes by type name (a copy)."""
    return BLOCKS.as_dict()


def block_from_dict(data: Mapping[str, Any]) -> Block:
    """A block from its dict form; errors name the field (the caller prefixes the path)."""
    if not isinstance(data, Mapping):
        raise SpecError("", f"a block must be a mapping with a `type` key, got {data!r}")
    if "type" not in data:
        raise SpecError("type", f"is missing; registered block types: {', '.join(sorted(BLOCKS))}")
    name = data["type"]
    if not isinstance(name, str) or name not in BLOCKS:
        raise SpecError(
            "type",
            f"unknown block type {name!r}{did_you_mean(str(name), BLOCKS)}; allowed: {', '.join(sorted(BLOCKS))}",
        )
    cls = BLOCKS.get(name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key == "type":
            continue
        if key not in fields:
            raise SpecError(key, f"unknown field for block {name!r}{did_you_mean(key, fields)}; "
                                 f"allowed: {', '.join(fields)}")
        kwargs[key] = value
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SpecError(missing[0], f"is required for block {name!r} ({describe(_field_types(cls)[missing[0]])})")
    return cls(**kwargs)


# --------------------------------------------------------------------------------------------------------
# the graph
# --------------------------------------------------------------------------------------------------------
INPUT = "input"


@dataclass(frozen=True)
class Node:
    """One block in the graph. ``inputs`` name earlier nodes (or ``"input"``, the network input)."""

    name: str
    block: Block
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class GraphSpec:
    """An architecture as data. Validated on construction; immutable afterwards.

    ``nodes`` run in order; every input must name an earlier node or ``"input"``. The network output is the
    node named by ``output`` (default: the last), then ``global_residual`` is applied.
    """

    name: str
    in_channels: int
    out_channels: int
    nodes: tuple[Node, ...]
    global_residual: Literal["none", "add", "subtract"] = "none"
    output: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        if not self.output and self.nodes:
            object.__setattr__(self, "output", self.nodes[-1].name)
        self._validate()

    # -- validation -------------------------------------------------------------------------------------
    def _validate(self) -> None:
        check_name(self.name, "name")
        for key in ("in_channels", "out_channels"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(key, f"must be a positive integer, got {v!r}")
        if not isinstance(self.description, str):
            raise SpecError("description", f"must be a string, got {self.description!r}")
        if self.global_residual not in GLOBAL_RESIDUALS:
            raise SpecError("global_residual", f"must be one of {', '.join(GLOBAL_RESIDUALS)}, "
                                               f"got {self.global_residual!r}")
        if not self.nodes:
            raise SpecError("blocks", "must list at least one block")
        channels: dict[str, int] = {INPUT: self.in_channels}
        scales: dict[str, int] = {INPUT: 1}
        for i, node in enumerate(self.nodes):
            where = f"blocks[{i}]"
            check_name(node.name, f"{where}.name", dots=False)
            if node.name in channels:
                raise SpecError(f"{where}.name", f"is reserved or already used, got {node.name!r}")
            expected = node.block.input_channels
            if len(node.inputs) != len(expected):
                raise SpecError(f"{where}.inputs", f"block {node.block.type!r} takes {len(expected)} input(s), "
                                                   f"got {len(node.inputs)}: {list(node.inputs)}")
            in_scales = set()
            for j, (src, want) in enumerate(zip(node.inputs, expected)):
                if src not in channels:
                    raise SpecError(f"{where}.inputs[{j}]", f"must name an earlier block or 'input', got {src!r}"
                                                            f"{did_you_mean(src, channels)}")
                if channels[src] != want:
                    raise SpecError(f"{where}.inputs[{j}]", f"block {node.block.type!r} expects {want} channels "
                                                            f"there, but {src!r} gives {channels[src]}")
                in_scales.add(scales[src])
            if len(in_scales) > 1:
                raise SpecError(f"{where}.inputs", f"inputs have different resolutions (scales {sorted(in_scales)})")
            channels[node.name] = node.block.out_channels
            scales[node.name] = in_scales.pop() * node.block.scale
        if self.output not in channels or self.output == INPUT:
            raise SpecError("output", f"must name a block, got {self.output!r}")
        if channels[self.output] != self.out_channels:
            raise SpecError("out_channels", f"is {self.out_channels} but block {self.output!r} gives "
                                            f"{channels[self.output]} channels")
        if self.global_residual != "none":
            if self.in_channels != self.out_channels or scales[self.output] != 1:
                raise SpecError("global_residual", "needs the output to have the input's channels and size "
                                                   f"(in {self.in_channels}, out {self.out_channels}, "
                                                   f"scale {scales[self.output]})")
        object.__setattr__(self, "_scales", scales)

    # -- derived ----------------------------------------------------------------------------------------
    @property
    def scale(self) -> int:
        """Output resolution / input resolution (the SR factor for low-resolution-input networks)."""
        return self._scales[self.output]  # type: ignore[attr-defined]

    def node_input_scale(self, node: Node) -> int:
        return self._scales[node.inputs[0]]  # type: ignore[attr-defined]

    @cached_property
    def hash(self) -> str:
        """A stable 16-hex-digit identifier of the design (name and description excluded)."""
        body = self.to_dict()
        body.pop("name")
        body.pop("description", None)
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- serialization ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        blocks = []
        prev = INPUT
        for node in self.nodes:
            d: dict[str, Any] = {"name": node.name}
            d.update(node.block.to_dict())
            if node.inputs != (prev,):
                d["inputs"] = list(node.inputs)
            blocks.append(d)
            prev = node.name
        out: dict[str, Any] = {
            "name": self.name,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "global_residual": self.global_residual,
        }
        if self.output != self.nodes[-1].name:
            out["output"] = self.output
        if self.description:
            out["description"] = self.description
        out["blocks"] = blocks
        return out

    def to_json(self, **kw: Any) -> str:
        return json_text(self.to_dict(), **kw)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=120)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, file: str | None = None) -> GraphSpec:
        try:
            return _spec_from_dict(data)
        except SpecError as err:
            raise err.within(file=file) from None

    @classmethod
    def from_file(cls, path: str | Path) -> GraphSpec:
        """Load a spec from ``.yaml``/``.yml``/``.json``; errors name the file and the key path."""
        path = Path(path)
        text = read_text_file(path, "spec file")
        try:
            data = _load_json(text) if path.suffix == ".json" else load_yaml(text, file=str(path))
        except SpecError as err:
            raise err.within(file=str(path)) from None
        except (yaml.YAMLError, json.JSONDecodeError, RecursionError) as err:
            msg = " ".join(str(err).split())
            raise SpecError("", f"malformed {'JSON' if path.suffix == '.json' else 'YAML'}: {msg}",
                            file=str(path)) from None
        return cls.from_dict(data, file=str(path))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        # whole or not at all: a trial's spec is read back by export and latency, and a half-written one would
        # be taken for a broken spec
        write_text(path, self.to_json(indent=2) if path.suffix == ".json" else self.to_yaml())
        return path


def _load_json(text: str) -> Any:
    """JSON with repeated keys refused (``json.loads`` would keep the last silently)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise SpecError(key, "duplicate key; each key may appear once in an object")
            out[key] = value
        return out

    return json.loads(text, object_pairs_hook=pairs)


_SPEC_KEYS = ("name", "in_channels", "out_channels", "global_residual", "output", "description", "blocks")


def _spec_from_dict(data: Mapping[str, Any]) -> GraphSpec:
    if not isinstance(data, Mapping):
        raise SpecError("", f"a spec must be a mapping with keys {', '.join(_SPEC_KEYS)}; got {type(data).__name__}")
    for key in data:
        if key not in _SPEC_KEYS:
            raise SpecError(str(key), f"unknown key{did_you_mean(str(key), _SPEC_KEYS)}; allowed: {', '.join(_SPEC_KEYS)}")
    for key in ("in_channels", "out_channels", "blocks"):
        if key not in data:
            raise SpecError(key, "is required")
    raw_blocks = data["blocks"]
    if not isinstance(raw_blocks, list) or not raw_blocks:
        raise SpecError("blocks", f"must be a non-empty list of blocks, got {raw_blocks!r}")
    nodes = []
    prev = INPUT
    for i, raw in enumerate(raw_blocks):
        where = f"blocks[{i}]"
        if not isinstance(raw, Mapping):
            raise SpecError(where, f"must be a mapping with a `type` key, got {raw!r}")
        raw = dict(raw)
        name = raw.pop("name", str(i))
        inputs = raw.pop("inputs", [prev])
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs):
            raise SpecError(f"{where}.inputs", f"must be a list of block names, got {inputs!r}")
        try:
            block = block_from_dict(raw)
        except SpecError as err:
            raise err.within(where) from None
        nodes.append(Node(str(name), block, tuple(inputs)))
        prev = str(name)
    name = data.get("name", "spec")
    if not isinstance(name, str):
        raise SpecError("name", f"must be a string, got {name!r}")
    return GraphSpec(
        name=name,
        in_channels=data["in_channels"],
        out_channels=data["out_channels"],
        nodes=tuple(nodes),
        global_residual=data.get("global_residual", "none"),
        output=data.get("output", ""),
        description=data.get("description", ""),
    )


class SpecBuilder:
    """Appends nodes with default names (their index) and sequential edges; ``.spec(...)`` freezes it.

    Block errors are re-raised with the ``blocks[i]`` path of the node being added.
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    @property
    def last(self) -> str:
        return self.nodes[-1].name if self.nodes else INPUT

    def add(self, block: Block, inputs: tuple[str, ...] | list[str] | None = None, name: str | None = None) -> str:
        name = name if name is not None else str(len(self.nodes))
        self.nodes.append(Node(name, block, tuple(inputs) if inputs is not None else (self.last,)))
        return name

    def spec(self, name: str, in_channels: int, out_channels: int, **kw: Any) -> GraphSpec:
        return GraphSpec(name=name, in_channels=in_channels, out_channels=out_channels, nodes=tuple(self.nodes), **kw)


__all__ = [
    "BLOCKS",
    "ROLES",
    "Block",
    "BlockExample",
    "ExportLimits",
    "GraphSpec",
    "Node",
    "SpecBuilder",
    "block_from_dict",
    "block_types",
    "register_block",
]
