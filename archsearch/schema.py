"""Typed, frozen configuration objects validated once at load time.

``load_dataclass(cls, data, path)`` turns a mapping from YAML into a frozen dataclass, checking every key (unknown
keys get a did-you-mean), every type (``bool`` is never a number), ``Literal`` choices, nested dataclasses,
tuples and mappings; errors are :class:`SpecError` with the key path (``training.steps``).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError, SpecError, did_you_mean


def describe(tp: Any) -> str:
    """A short English description of a type annotation, for error messages."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list, each item {describe(typing.get_args(tp)[0])}"
    if origin in (dict, Mapping, typing.Mapping) or tp in (dict, Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {', '.join(f.name for f in dataclasses.fields(tp))}"
    if tp is Any:
        return "any value"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "null"}.get(tp, str(tp))


def coerce(tp: Any, value: Any) -> tuple[bool, Any]:
    """(ok, value converted to ``tp``). ints are accepted for floats; lists become tuples."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, value
    if origin is Literal:
        return any(type(a) is type(value) and a == value for a in typing.get_args(tp)), value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = coerce(arg, value)
            if ok:
                return True, v
        return False, value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        inner = typing.get_args(tp)[0]
        out = []
        for item in value:
            ok, v = coerce(inner, item)
            if not ok:
                return False, value
            out.append(v)
        return True, tuple(out)
    if origin in (dict, Mapping, typing.Mapping) or tp in (dict, Mapping):
        return isinstance(value, Mapping), value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        return True, float(value)
    if tp is str:
        return isinstance(value, str), value
    return isinstance(value, tp), value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def load_dataclass(cls: type, data: Any, path: str = "") -> Any:
    """Validate ``data`` (a mapping) into the frozen dataclass ``cls``; nested dataclass fields recurse."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(path, f"must be {describe(cls)}, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise SpecError(_join(path, str(key)), f"unknown key{did_you_mean(str(key), fields)}; "
                                                   f"allowed: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        where = _join(path, name)
        tp = hints[name]
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                if dataclasses.is_dataclass(tp):
                    kwargs[name] = load_dataclass(tp, {}, where)
                    continue
                raise SpecError(where, f"is required ({describe(tp)})")
            continue
        value = data[name]
        inner = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) in (
            typing.Union, types.UnionType) else [tp]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]) and value is not None:
            kwargs[name] = load_dataclass(inner[0], value, where)
            continue
        ok, v = coerce(tp, value)
        if not ok:
            raise SpecError(where, f"must be {describe(tp)}, got {value!r}")
        kwargs[name] = v
    try:
        return cls(**kwargs)
    except SpecError as err:
        raise err.within(path) from None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, recursively for mappings (used for study profiles)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _yaml_loader():
    class Loader(yaml.SafeLoader):
        """SafeLoader that reads ``1e-4`` as a float: YAML 1.1 (PyYAML) wants ``1.0e-4`` and would give the string
        '1e-4', a needless type error for a learning rate or a BN epsilon."""

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."),
    )
    return Loader


def read_text_file(path: str | Path, what: str = "file") -> str:
    """The text of a UTF-8 file (a UTF-8 byte-order mark is allowed); anything else is a :class:`SpecError` naming
    the file: a missing or unreadable file, UTF-16/UTF-32 (by their byte-order marks), binary data (NUL bytes) or
    bytes that are not UTF-8."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise SpecError("", f"is a folder, not a {what}", file=str(path)) from None
    except OSError as err:
        raise SpecError("", f"cannot read {what}: {err.strerror or err}", file=str(path)) from None
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raise SpecError("", f"is {name} text (byte-order mark); save it as UTF-8", file=str(path))
    if b"\x00" in raw:
        raise SpecError("", f"holds NUL bytes: a binary file or UTF-16/32 text, not a UTF-8 {what}; save it "
                            "as UTF-8", file=str(path))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise SpecError("", f"is not UTF-8 text (invalid byte 0x{raw[err.start]:02x} on line {line}); save it as "
                            "UTF-8", file=str(path)) from None
    return text


_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
         (b"\xfe\xff", "UTF-16"))


def _check_duplicates(node: Any, path: str, seen: set[int]) -> None:
    """Raise :class:`SpecError` at the first mapping key that appears twice (YAML would keep the last silently).
    Nodes shared through anchors are visited once (no blow-up on alias bombs)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` merges are allowed to repeat keys
                    continue
                key = key_node.value
                where = _join(path, key)
                line = key_node.start_mark.line + 1
                if key in first:
                    raise SpecError(where, f"duplicate key on line {line} (first on line {first[key]}); each key may "
                                           "appear once in a mapping")
                first[key] = line
                _check_duplicates(value_node, where, seen)
            else:
                _check_duplicates(value_node, path, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, f"{path}[{i}]", seen)


def load_yaml(text: str, *, file: str | None = None) -> Any:
    """``yaml.load`` with the safe loader (no object construction) and YAML 1.2-style floats. A key repeated in a
    mapping is a :class:`SpecError` with its key path and lines (``file`` names the file in it); malformed YAML
    raises ``yaml.YAMLError`` (callers add the file name)."""
    loader = _yaml_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            _check_duplicates(node, "", set())
        except SpecError as err:
            raise err.within(file=file) from None
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: Path) -> Any:
    """The YAML of a study or search-space file; every problem (missing, a folder, not UTF-8, binary, malformed,
    a repeated key) is one :class:`ConfigError` naming the file."""
    try:
        text = read_text_file(path, "YAML file")
        return load_yaml(text, file=str(path))
    except SpecError as err:
        raise ConfigError(err.path, err.message, file=str(path)) from None
    except yaml.YAMLError as err:
        raise ConfigError("", "malformed YAML: " + " ".join(str(err).split()), file=str(path)) from None
    except RecursionError:
        raise ConfigError("", "malformed YAML: nested too deeply", file=str(path)) from None

