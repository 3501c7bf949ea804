"""The block contract kit: the same behavioural checks for every registered block type.

Each block class declares its small examples (``Block.examples()``, next to the block in its family's file); this
kit collects them from the block registry, so a new block is tested without new test code -- and a registered
type without an example yields a failing case. ``tests/test_blocks_contract.py`` runs every check below on every
example; a test that defines its own block can call :func:`check_block_contract` on its examples directly.

House style: examples use <= 16 channels and <= 32 x 32 inputs.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import torch

from ..blocks import Conv
from ..builder import build
from ..counting import count, macs
from ..export import python_source
from ..spec import BLOCKS, ROLES, Block, BlockExample, GraphSpec, Node, block_from_dict
from .macs import fvcore_macs


def block_examples() -> dict[str, list[BlockExample]]:
    """The examples of every registered block type that has some, by type name; ids are ``<type>-<id>``."""
    out = {}
    for name, cls in BLOCKS.items():
        examples = [dataclasses.replace(ex, id=f"{name}-{ex.id}") for ex in cls.examples()]
        if examples:
            out[name] = examples
    return out


def block_cases() -> list[Any]:
    """pytest params over every registered block type x its examples; a type without examples yields one case
    that fails (so a new block cannot slip through untested)."""
    examples = block_examples()
    cases = []
    for name in sorted(BLOCKS):
        if name not in examples:
            cases.append(pytest.param(name, None, id=f"{name}-NO-EXAMPLE"))
            continue
        for ex in examples[name]:
            cases.append(pytest.param(name, ex, id=ex.id))
    return cases


def wrap_block(block: Block) -> GraphSpec:
    """A minimal spec around ``block``: its first input reads the network input; every other input reads a 1x1
    conv adapter from the network input to the channels it expects."""
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


def example_inputs(ex: BlockExample, batch: int, seed: int = 1) -> tuple[torch.Tensor, ...]:
    """Seeded random inputs of the example's size, one per input edge of the block."""
    g = torch.Generator().manual_seed(seed)
    h, w = ex.size
    return tuple(torch.randn(batch, c, h, w, generator=g) for c in ex.block.input_channels)


# ---------------------------------------------------------------------------------------------------------
# the checks (each raises AssertionError naming the example)
# ---------------------------------------------------------------------------------------------------------
def check_house_size(ex: BlockExample) -> None:
    assert max(ex.block.input_channels + (ex.block.out_channels,)) <= 16, f"{ex.id}: more than 16 channels"
    assert max(ex.size) <= 32, f"{ex.id}: input larger than 32 x 32"


def check_forward_shape_and_finite(ex: BlockExample) -> None:
    module = ex.block.build()
    h, w = ex.size
    s = ex.block.scale
    for mode in ("train", "eval"):
        module.train(mode == "train")
        with torch.no_grad() if mode == "eval" else torch.enable_grad():
            y = module(*example_inputs(ex, batch=2))
        assert y.shape == (2, ex.block.out_channels, h * s, w * s), f"{ex.id} ({mode}): shape {tuple(y.shape)}"
        assert torch.isfinite(y).all(), f"{ex.id} ({mode}): non-finite output"


def check_gradients_reach_every_parameter(ex: BlockExample) -> None:
    module = ex.block.build().train()
    inputs = tuple(x.requires_grad_() for x in example_inputs(ex, batch=2))
    module(*inputs).square().mean().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{ex.id}: no gradient reaches parameter {name}"
        assert torch.isfinite(p.grad).all(), f"{ex.id}: non-finite gradient in {name}"
    for x in inputs:
        assert x.grad is not None and torch.isfinite(x.grad).all(), f"{ex.id}: no finite gradient at the input"


def check_param_count_equals_built_module(ex: BlockExample) -> None:
    block = ex.block
    numel = sum(p.numel() for p in block.build().parameters())
    assert block.params() == numel, f"{ex.id}: params() {block.params()} != built module {numel}"
    roles = block.params_by_role()
    assert set(roles) <= set(ROLES), f"{ex.id}: unknown roles {set(roles) - set(ROLES)}"
    assert all(isinstance(n, int) and n >= 0 for n in roles.values()), f"{ex.id}: {roles}"
    assert sum(roles.values()) == block.params()


def check_macs_equal_fvcore(ex: BlockExample) -> None:
    h, w = ex.size
    result = fvcore_macs(ex.block.build(), example_inputs(ex, batch=1))
    assert not result.unsupported_ops, f"{ex.id}: ops without a MAC handler: {dict(result.unsupported_ops)}"
    assert ex.block.macs(h, w) == result.total, f"{ex.id}: {ex.block.macs(h, w)} != {dict(result.by_operator)}"


def check_wrapped_in_graph_spec(ex: BlockExample) -> None:
    """The block inside a minimal GraphSpec: spec counts == built module, exact MACs == fvcore, shape."""
    spec = wrap_block(ex.block)
    counts = count(spec)
    module = build(spec)
    assert counts.params == sum(p.numel() for p in module.parameters()), ex.id
    assert sum(counts.params_by_role.values()) == counts.params, ex.id
    h, w = ex.size
    x = torch.randn(1, spec.in_channels, h, w)
    result = fvcore_macs(module, x)
    assert not result.unsupported_ops, f"{ex.id}: {dict(result.unsupported_ops)}"
    assert macs(spec, h, w) == result.total, f"{ex.id}: {macs(spec, h, w)} != {result.total}"
    assert module(x).shape == (1, spec.out_channels, h * spec.scale, w * spec.scale), ex.id


def check_same_seed_same_output(ex: BlockExample) -> None:
    outs = []
    for _ in range(2):
        torch.manual_seed(1234)
        module = ex.block.build().eval()
        with torch.no_grad():
            outs.append(module(*example_inputs(ex, batch=2)))
    assert torch.equal(outs[0], outs[1]), f"{ex.id}: the same seed gave different outputs"


def check_dict_round_trip(ex: BlockExample) -> None:
    d = ex.block.to_dict()
    assert d["type"] == ex.block.type
    assert block_from_dict(d) == ex.block, ex.id
    assert block_from_dict(json.loads(json.dumps(d))) == ex.block, ex.id  # tuples come back as lists from JSON


def check_export_reproduces_the_block(ex: BlockExample) -> None:
    """The generated torch-only source builds the same module: the framework's weights load strictly and the
    outputs are equal (``Block.export``, used by ``archsearch export``)."""
    spec = wrap_block(ex.block)
    model = build(spec).eval()
    namespace: dict = {}
    exec(compile(python_source(spec), f"<export of {ex.id}>", "exec"), namespace)  # noqa: S102 - our own output
    net = namespace["Net"]().eval()
    net.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, spec.in_channels, *ex.size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (net(x) - model(x)).abs().max().item() <= 1e-6, ex.id


#: Every check of the kit, in the order :func:`check_block_contract` runs them.
CHECKS = (check_house_size, check_forward_shape_and_finite, check_gradients_reach_every_parameter,
          check_param_count_equals_built_module, check_macs_equal_fvcore, check_wrapped_in_graph_spec,
          check_same_seed_same_output, check_dict_round_trip, check_export_reproduces_the_block)


def check_block_contract(ex: BlockExample) -> None:
    """Run every check of the kit on one example."""
    for check in CHECKS:
        check(ex)


__all__ = ["CHECKS", "BlockExample", "block_cases", "block_examples", "check_block_contract", "example_inputs",
           "wrap_block"] + [c.__name__ for c in CHECKS]
