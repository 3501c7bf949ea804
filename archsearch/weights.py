"""The one place that reads weight files: archsearch checkpoints, safetensors, plain ``state_dict`` files and the
authors' published layouts (mapped onto the zoo's keys by a registered *layout*).

A layout is a key mapping from an author's ``state_dict`` to the zoo model's: ``detect`` recognises the author's
keys, ``convert`` renames them. Adding one is one function and one :func:`register_layout` line in the block file
of the family whose zoo model it loads (``blocks/conv.py``: DnCNN; ``blocks/csc.py``: CSCNet; docs/zoo.md
lists each mapping).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from .errors import ArchsearchError
from .registry import Registry
from .text import shown

CHECKPOINT_FORMAT = "archsearch-checkpoint-1"


class WeightsError(ArchsearchError, ValueError):
    """A weights file that cannot be read, or whose tensors do not fit the model (file and reason)."""


@dataclass(frozen=True)
class WeightLayout:
    """An author's ``state_dict`` key layout: ``detect`` recognises its keys, ``convert`` maps them onto the zoo
    model's; ``source`` says where the author's weights come from."""

    name: str
    detect: Callable[[Mapping[str, Any]], bool]
    convert: Callable[[Mapping[str, Any]], dict[str, Any]]
    source: str = ""


#: The layout registry: name -> :class:`WeightLayout`, tried in registration order by :func:`state_dict_of`.
LAYOUTS: Registry[WeightLayout] = Registry("weights layout")


def register_layout(name: str, detect: Callable[[Mapping[str, Any]], bool],
                    convert: Callable[[Mapping[str, Any]], dict[str, Any]], source: str = "") -> WeightLayout:
    return LAYOUTS.add(name, WeightLayout(name, detect, convert, source))


def layouts() -> dict[str, WeightLayout]:
    return LAYOUTS.as_dict()


# ---------------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------------
def read_weights(path: str | Path) -> dict[str, Any]:
    """The raw content of a weights file: a ``.safetensors`` file's tensors, or what ``torch.load`` returns with
    ``weights_only=True`` (tensors and plain containers, never code). Errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{shown(p)}: no such weights file")
    if p.suffix == ".safetensors":
        try:
            return dict(load_file(str(p)))
        except Exception as err:  # safetensors raises its own error types on junk
            raise WeightsError(f"{shown(p)}: not a readable safetensors file ({_first_line(err)})") from None

    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types on junk (UnpicklingError, struct.error, ...)
        raise WeightsError(f"{shown(p)}: not a readable PyTorch weights file ({_first_line(err)})") from None
    if not isinstance(obj, dict):
        raise WeightsError(f"{shown(p)}: expected a state_dict or an archsearch checkpoint, got {type(obj).__name__}")
    return obj


def is_checkpoint(obj: Mapping[str, Any]) -> bool:
    """An ``archsearch train`` checkpoint (spec, task, config and state_dict in one file)."""
    return obj.get("format") == CHECKPOINT_FORMAT


def state_dict_of(obj: Mapping[str, Any], path: str | Path = "") -> dict[str, Any]:
    """The model weights inside what :func:`read_weights` returned, with an author's layout mapped onto the zoo's
    keys when one is recognised."""
    sd = obj.get("state_dict", obj) if isinstance(obj.get("state_dict"), Mapping) else obj
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{shown(path)}: not a state_dict: entry {bad[0]!r} is not a named tensor")
    for layout in LAYOUTS.values():
        if layout.detect(sd):
            return layout.convert(sd)
    return dict(sd)


def apply_weights(model, state: Mapping[str, Any], path: str | Path = "") -> None:
    """Load ``state`` into ``model`` strictly; a mismatch is one line naming the file and the first differences."""
    keys = set(model.state_dict())
    missing, unexpected = sorted(keys - set(state)), sorted(set(state) - keys)
    name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    if missing or unexpected:
        raise WeightsError(f"{shown(path)}: weights do not fit model {name!r}: missing {missing[:3]}"
                           f"{' ...' if len(missing) > 3 else ''}, unexpected {unexpected[:3]}"
                           f"{' ...' if len(unexpected) > 3 else ''}")
    own = model.state_dict()
    cast = {}
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise WeightsError(f"{shown(path)}: weights do not fit model {name!r}: {k} has shape {tuple(v.shape)}, "
                               f"the model's is {tuple(own[k].shape)}")
        want = own[k].dtype
        if not want.is_floating_point:  # integer buffers (BatchNorm's num_batches_tracked): as load_state_dict does
            cast[k] = v
            continue
        if not v.dtype.is_floating_point:
            # load_state_dict would copy_ int64/bool values into a float parameter without a word, and the model
            # then scores as if untrained: an integer tensor where a weight belongs is a broken file
            raise WeightsError(f"{shown(path)}: weights do not fit model {name!r}: {k} holds {_dtype(v.dtype)} values, "
                               f"the model's parameter is {_dtype(want)}; expected floating-point values")
        # Among float kinds the values are the same numbers at another precision (float64 from converted MATLAB
        # weights, float16/bfloat16 saved to halve the file): cast to the model's dtype, as training would see it
        cast[k] = v.to(want) if v.dtype != want else v
    model.load_state_dict(cast, strict=True)


def load_weights(model, path: str | Path) -> dict[str, Any]:
    """Read ``path`` and load its weights into ``model`` (any format above); returns the file's raw content."""
    obj = read_weights(path)
    apply_weights(model, state_dict_of(obj, path), path)
    return obj


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
