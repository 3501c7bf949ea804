"""Text that leaves archsearch: file names shown in messages, and JSON written for other programs.

* :func:`shown` -- a file name as it may be printed: control characters (newline, escape, bidi overrides, ...)
  written as Python escapes, so a hostile name cannot break a one-line error or drive the terminal;
* :func:`json_text` -- strict JSON (RFC 8259): non-finite floats become ``null`` (``json.dumps`` would write
  ``NaN``/``Infinity``, which no strict parser reads) and ``allow_nan=False`` guards the rest.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from os import PathLike
from typing import Any

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown(name: str | PathLike | Any) -> str:
    """``name`` (a path or string) with every non-printable character escaped (``\\n``, ``\\x1b``, ``\\u202e``);
    printable text, spaces and non-ASCII letters are kept as they are."""
    text = str(name)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def finite_or_null(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float (Python, NumPy or 0-d tensor scalars) replaced by ``None``, and
    tuples as lists; other values are kept."""
    if isinstance(obj, Mapping):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    if getattr(obj, "ndim", None) == 0 and hasattr(obj, "item"):  # a 0-d tensor or array: its Python number
        obj = obj.item()
    if isinstance(obj, bool) or isinstance(obj, numbers.Integral):
        return obj if isinstance(obj, (bool, int)) else int(obj)
    if isinstance(obj, numbers.Real):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def json_text(obj: Any, **kw: Any) -> str:
    """``json.dumps`` of ``obj`` as strict JSON: non-finite numbers written as ``null`` (see the module docstring);
    ``kw`` go to ``json.dumps`` (``default=`` too, for values JSON has no type for)."""
    return json.dumps(finite_or_null(obj), allow_nan=False, **kw)
