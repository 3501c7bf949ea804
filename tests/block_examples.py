"""Small examples of every registered block (the contract kit's data) and shared helpers for the tests.

House style: unit tests use <= 16 channels and <= 32 x 32 inputs.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from archsearch.blocks import XUNIT_DESIGNS
from archsearch.spec import Block, GraphSpec, Node, block_types

REPO = Path(__file__).resolve().parents[1]

#: Small values for required fields, chosen generically by annotation (channels 8 <= 16).
SMALL_INT = 8
SMALL_TUPLE = (4, 8)


def small_required(cls: type[Block]) -> dict[str, Any]:
    """Values for every required field of ``cls`` from its annotation alone: small ints / int tuples."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        tp = hints[f.name]
        if tp is int:
            out[f.name] = SMALL_INT
        elif typing.get_origin(tp) is tuple:
            out[f.name] = SMALL_TUPLE
        else:
            raise TypeError(f"no generic small value for required field {cls.__name__}.{f.name}: {tp}")
    return out


@dataclass(frozen=True)
class Example:
    """One small instance of a block type and the input size to test it at."""

    id: str
    block: Block
    size: tuple[int, int] = (12, 10)  # non-square on purpose: catches h/w mix-ups


def _ex(type_name: str, id: str, size: tuple[int, int] = (12, 10), **overrides: Any) -> Example:
    cls = block_types()[type_name]
    return Example(f"{type_name}-{id}", cls(**{**small_required(cls), **overrides}), size)


def _xunit() -> list[Example]:
    out = [_ex("xunit", "default-r3", kernel_size=3), _ex("xunit", "r1", kernel_size=1)]
    out += [_ex("xunit", name, **{**XUNIT_DESIGNS[name], "kernel_size": 3}) for name in XUNIT_DESIGNS]
    return out


def _nsr() -> list[Example]:
    base = dict(channels=8, hidden_channels=16)
    pooled = (20, 20)  # not divisible by 4: exercises the padding of the patch pooling
    return [
        _ex("nsr_residual", "pool0", **base),
        _ex("nsr_residual", "pool4", pooled, **base, pool=4),
        _ex("nsr_residual", "pool4-nonsquare", (20, 18), **base, pool=4, sparsity_groups=2),
        _ex("nsr_residual", "pool4-k1", pooled, **base, pool=4, kernel_size=1),
        _ex("nsr_residual", "shared", **base, shared_selection=True),
        _ex("nsr_residual", "shared-pool4", pooled, **base, shared_selection=True, pool=4),
        _ex("nsr_residual", "card2", **base, cardinality=2),
        _ex("nsr_residual", "card2-pool4", pooled, **base, cardinality=2, pool=4),
        _ex("nsr_residual", "same_flops", channels=8, hidden_channels=8, sparsity_groups=2, regime="same_flops"),
        _ex("nsr_residual", "same_flops-card2-pool4", pooled, channels=8, hidden_channels=8, sparsity_groups=3,
            regime="same_flops", cardinality=2, pool=4),
        _ex("nsr_residual", "sigmoid", **base, selection="sigmoid"),
        _ex("nsr_residual", "none", **base, selection="none", temperature=0.5),
        _ex("nsr_residual", "mlp-hidden-tau", **base, mlp_hidden=4, temperature=10.0),
        _ex("nsr_residual", "nobias-scale", **base, bias=False, branch_scale=0.1),
        # the reference (pt_ir) form with weight normalisation, cardinals on both convs' outputs
        _ex("nsr_residual", "wn-card4", channels=8, hidden_channels=8, sparsity_groups=2, cardinality=4,
            regime="same_flops", weight_norm=True, branch_scale=0.25),
        _ex("nsr_residual", "wn-card2-pool4", pooled, **base, cardinality=2, weight_norm=True, pool=4),
        _ex("nsr_residual", "wn-shared-nobias", **base, weight_norm=True, shared_selection=True, bias=False),
        # today's earlier form (paper Eq. 4/9: W_2 split along the hidden neurons), a named option
        _ex("nsr_residual", "hidden-groups", **base, layout="hidden_groups", cardinality=2),
        _ex("nsr_residual", "hidden-groups-pool4", pooled, **base, layout="hidden_groups", pool=4),
        _ex("nsr_residual", "hidden-groups-shared", **base, layout="hidden_groups", shared_selection=True),
    ]


def _memory() -> list[Example]:
    out = []
    for n in (1, 3):
        out += [
            _ex("memory_block", f"m{n}", channels=8, recursions=2, n_memories=n),
            _ex("memory_block", f"m{n}-unshared", channels=8, recursions=2, n_memories=n, share_weights=False),
            _ex("memory_block", f"m{n}-ns", channels=8, recursions=3, n_memories=n, short_term=False),
        ]
    out += [
        _ex("memory_block", "nl", channels=8, recursions=2, n_memories=1, long_term=False),
        _ex("memory_block", "nl-ns-nobias", channels=8, recursions=2, long_term=False, short_term=False, bias=False),
        _ex("memory_block", "m2-short-first", channels=8, recursions=2, n_memories=2, gate_order="short_first"),
        _ex("memory_block", "m2-ns-short-first-nobias", channels=8, recursions=2, n_memories=2, short_term=False,
            gate_order="short_first", bias=False),
    ]
    return out


def _csc() -> list[Example]:
    base = dict(filters=8, kernel_size=5, unfoldings=3)
    return [
        _ex("csc", "s2", **base, stride=2),
        _ex("csc", "s3-tied", (13, 11), **base, stride=3, tied=True),
        _ex("csc", "s1", **base, stride=1),
        _ex("csc", "s4-k4-patches", (9, 14), filters=8, kernel_size=4, stride=4, unfoldings=2),
        _ex("csc", "s2-one-shift", **base, stride=2, average_shifts=False),
        _ex("csc", "s3-u1", filters=8, kernel_size=5, stride=3, unfoldings=1),  # no decoder A
        _ex("csc", "rgb", (16, 12), channels=3, filters=8, kernel_size=3, stride=2, unfoldings=2),
        _ex("csc", "tiny-image", (5, 6), filters=4, kernel_size=7, stride=4, unfoldings=2),  # pads > image
    ]


#: Examples per registered block type. A registered type missing here fails the contract test.
EXAMPLES: dict[str, list[Example]] = {
    "conv": [
        _ex("conv", "3x3"),
        _ex("conv", "1x1-nobias", in_channels=4, out_channels=16, kernel_size=1, bias=False),
        _ex("conv", "5x5-groups4", in_channels=8, out_channels=12, kernel_size=5, groups=4),
        _ex("conv", "depthwise", in_channels=8, out_channels=8, groups=8),
    ],
    "batchnorm": [_ex("batchnorm", "affine", eps=1e-4), _ex("batchnorm", "plain", affine=False)],
    "relu": [_ex("relu", "default")],
    "identity": [_ex("identity", "default")],
    "prelu": [_ex("prelu", "channel"), _ex("prelu", "shared", slopes="shared")],
    "xunit": _xunit(),
    "nsr_residual": _nsr(),
    "memory_block": _memory(),
    "csc": _csc(),
    "patch_lista": [
        _ex("patch_lista", "p4", patch_size=4, atoms=16, iterations=2, mlp_hidden=(8, 4)),
        _ex("patch_lista", "p5-nonsquare-T0", patch_size=5, atoms=12, iterations=0, mlp_hidden=(6,)),
        _ex("patch_lista", "p3-rgb-noclamp", (9, 11), channels=3, patch_size=3, atoms=9, iterations=1,
            mlp_hidden=(4,), clamp=False),
    ],
    "memnet_recon": [
        _ex("memnet_recon", "m1", channels=8, out_channels=1, n_outputs=1),
        _ex("memnet_recon", "m3-rgb", channels=8, out_channels=3, n_outputs=3),
        _ex("memnet_recon", "m3-shared-norm-nobias", channels=8, out_channels=1, n_outputs=3, shared_norm=True,
            bias=False),
    ],
    "residual": [
        _ex("residual", "relu"),
        _ex("residual", "prelu-bn", activation="prelu", batch_norm=True),
        _ex("residual", "xunit-e2", activation="xunit", xunit_kernel_size=3, expansion=2),
        _ex("residual", "xunit-bn-scale", activation="xunit", xunit_kernel_size=5, batch_norm=True,
            branch_scale=0.1, bias=False),
        _ex("residual", "relu-5x5", kernel_size=5),
    ],
    "upsampler": [
        _ex("upsampler", "x2", in_channels=8, out_channels=3, factor=2),
        _ex("upsampler", "x3", in_channels=8, out_channels=1, factor=3, kernel_size=1),
        _ex("upsampler", "x4-nobias", in_channels=4, out_channels=1, factor=4, bias=False),
    ],
    "wn_conv": [_ex("wn_conv", "3x3"), _ex("wn_conv", "5x5-gain", in_channels=3, out_channels=12, kernel_size=5,
                                          gain_init=0.25)],
    "pixel_shuffle": [_ex("pixel_shuffle", "x2"), _ex("pixel_shuffle", "x3", channels=9, factor=3)],
    "mean_shift": [_ex("mean_shift", "sub"), _ex("mean_shift", "add-rgb", channels=3, shift=0.4488)],
    "add": [_ex("add", "2"), _ex("add", "3-scaled", n_inputs=3, branch_scale=0.5)],
    "concat": [_ex("concat", "2"), _ex("concat", "3", channels=(2, 3, 4))],
}


def block_cases() -> list[Any]:
    """pytest params over every registered block type x its examples; a type without examples yields one case
    that fails (so a new block cannot slip through untested)."""
    cases = []
    for name in sorted(block_types()):
        examples = EXAMPLES.get(name)
        if not examples:
            cases.append(pytest.param(name, None, id=f"{name}-NO-EXAMPLE"))
            continue
        for ex in examples:
            cases.append(pytest.param(name, ex, id=ex.id))
    return cases


def wrap_block(block: Block) -> GraphSpec:
    """A minimal spec around ``block``: its first input reads the network input; every other input reads a 1x1
    conv adapter from the network input to the channels it expects."""
    from archsearch.blocks import Conv

    c0 = block.input_channels[0]
    nodes = []
    inputs = []
    for j, c in enumerate(block.input_channels):
        if j == 0:
            inputs.append("input")
        else:
            nodes.append(Node(f"adapt{j}", Conv(c0, c, 1), ("input",)))
            inputs.append(f"adapt{j}")
    nodes.append(Node("block", block, tuple(inputs)))
    return GraphSpec(name=f"wrapped_{block.type}", in_channels=c0, out_channels=block.out_channels, nodes=tuple(nodes))


def shared_dir() -> Path:
    """``$ARCHSEARCH_SHARED`` or ``../shared`` relative to the repository root."""
    env = os.environ.get("ARCHSEARCH_SHARED")
    return Path(env) if env else (REPO.parent / "shared")


__all__ = ["EXAMPLES", "Example", "block_cases", "shared_dir", "small_required", "wrap_block"]
