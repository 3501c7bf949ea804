"""Exact parameter and MAC counts from the spec alone -- no module is built.

* ``params`` -- trainable parameters (weights shared within a block, e.g. MemNet recursions, count once);
* ``params_by_role`` -- the same split by role: conv, activation, normalization, selection (NSR MLPs), gate
  (MemNet gate units and averaging weights), other;
* ``activation_param_pct`` -- the xUnit paper's quantity (Fig. 4): 100 x activation parameters / all parameters;
* ``macs_per_pixel`` -- multiply-accumulates per *output* pixel, the per-pixel rate (terms paid once per image,
  such as an NSR selection MLP on globally pooled features, vanish in it; ``macs(spec, h, w)`` includes them).

What a MAC count includes is documented in each block file and in docs/counting.md; in short: convolutions (incl.
depthwise and grouped), linear layers, inference BatchNorm as one MAC per element, average pooling as one MAC
per input value, NSR kernel aggregation; elementwise ops (ReLU, PReLU, exp, sigmoid, softmax, products, sums,
residual additions) and data movement (concat, pixel shuffle, padding) are excluded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from .errors import SpecError
from .spec import ROLES, Block, GraphSpec

#: The most parameters a spec may have to be built: 4 GiB of float32 weights (16 GiB with gradients and Adam's
#: two moments), 200x the largest zoo model (EDSR-NSR x4, 4.9 M); a spec above it is a typo or a hostile file,
#: and building it would end in the allocator's traceback instead of an error naming the file.
MAX_PARAMS = 1_000_000_000
#: The widest tensor a spec may ask for, in float32 bytes per input pixel: 16,384 channels (the zoo's widest is
#: 64); at this width one 512x512 activation is already 16 GiB, more than most GPUs hold.
MAX_ACTIVATION_BYTES_PER_PIXEL = 16_384 * 4


@dataclass(frozen=True)
class Counts:
    params: int
    params_by_role: Mapping[str, int]
    macs_per_pixel: float

    @property
    def activation_param_pct(self) -> float:
        return 100.0 * self.params_by_role["activation"] / self.params if self.params else 0.0

    def as_dict(self) -> dict:
        return {
            "params": self.params,
            "macs_per_pixel": self.macs_per_pixel,
            "activation_param_pct": self.activation_param_pct,
            "params_by_role": dict(self.params_by_role),
        }


@lru_cache(maxsize=65536)
def _block_counts(block: Block) -> tuple[tuple[int, ...], Fraction]:
    roles = block.params_by_role()
    return tuple(roles.get(r, 0) for r in ROLES), block.macs_per_pixel()


def count(spec: GraphSpec) -> Counts:
    """Parameters, parameters by role and MACs per output pixel of ``spec``."""
    totals = [0] * len(ROLES)
    macs = Fraction(0)
    for node in spec.nodes:
        roles, mpp = _block_counts(node.block)
        for i, n in enumerate(roles):
            totals[i] += n
        s = spec.node_input_scale(node)
        macs += mpp * s * s if s != 1 else mpp
    out_scale = spec.scale
    if out_scale != 1:
        macs /= out_scale * out_scale
    return Counts(sum(totals), dict(zip(ROLES, totals)), float(macs))


def macs(spec: GraphSpec, height: int, width: int) -> int:
    """Exact MACs of one forward pass on one ``height`` x ``width`` input image."""
    total = 0
    for node in spec.nodes:
        s = spec.node_input_scale(node)
        total += node.block.macs(height * s, width * s)
    return total


def widest_activation(spec: GraphSpec) -> tuple[int, int]:
    """``(float32 bytes per input pixel, node index)`` of the widest tensor the spec's blocks read, write or
    declare (every ``*channels`` field), scaled by the resolution it lives at; from the spec alone."""
    best = (4 * spec.in_channels, 0)
    for i, node in enumerate(spec.nodes):
        block = node.block
        widths = [*block.input_channels, block.out_channels]
        widths += [v for f in dataclasses.fields(block) if f.name.endswith("channels")
                   and isinstance(v := getattr(block, f.name), int)]
        s = spec.node_input_scale(node) * max(block.scale, 1)
        if 4 * max(widths) * s * s > best[0]:  # the first of equally wide nodes is named
            best = (4 * max(widths) * s * s, i)
    return best


def check_size(spec: GraphSpec) -> None:
    """Raise :class:`SpecError` when ``spec`` is too large to build (:data:`MAX_PARAMS`,
    :data:`MAX_ACTIVATION_BYTES_PER_PIXEL`), counted without building anything."""
    params = count(spec).params
    if params > MAX_PARAMS:
        raise SpecError("blocks", f"the spec has {params:,} parameters, above the limit of {MAX_PARAMS:,} "
                                  "(4 GiB of float32 weights); it is not built")
    width, i = widest_activation(spec)
    if width > MAX_ACTIVATION_BYTES_PER_PIXEL:
        raise SpecError(f"blocks[{i}]", f"needs {width:,} bytes of activations per input pixel "
                                        f"({width * 256 * 256 / 2**30:,.1f} GiB for one 256x256 image), above "
                                        f"the limit of {MAX_ACTIVATION_BYTES_PER_PIXEL:,} (16,384 float32 "
                                        "channels); it is not built")
