"""Contract test kit: the same behavioural checks for every registered block type.

Parametrized over ``archsearch.spec.block_types()`` x the small examples of ``block_examples.EXAMPLES``: a new
block gets all of these tests without new test code -- and a registered type without an example fails.
"""

from __future__ import annotations

import json

import pytest
import torch
from block_examples import EXAMPLES, Example, block_cases, wrap_block
from fvcore_macs import fvcore_macs

import archsearch
from archsearch.spec import ROLES, block_from_dict, block_types

CASES = block_cases()


def _example(type_name: str, ex: Example | None) -> Example:
    if ex is None:
        pytest.fail(f"registered block type {type_name!r} has no example in tests/block_examples.py EXAMPLES: "
                    "add at least one small instance (<= 16 channels) so the contract kit covers it")
    assert ex.block.type == type_name
    return ex


def _inputs(ex: Example, batch: int, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    h, w = ex.size
    return tuple(torch.randn(batch, c, h, w, generator=g) for c in ex.block.input_channels)


def test_every_registered_block_has_examples():
    missing = sorted(set(block_types()) - set(EXAMPLES))
    assert not missing, f"block types without examples in tests/block_examples.py: {missing}"
    unknown = sorted(set(EXAMPLES) - set(block_types()))
    assert not unknown, f"examples for unregistered block types: {unknown}"


def test_example_sizes_follow_house_style():
    for examples in EXAMPLES.values():
        for ex in examples:
            assert max(ex.block.input_channels + (ex.block.out_channels,)) <= 16, ex.id
            assert max(ex.size) <= 32, ex.id


@pytest.mark.parametrize("type_name, ex", CASES)
def test_forward_shape_and_finite(type_name, ex):
    ex = _example(type_name, ex)
    module = ex.block.build()
    y = module(*_inputs(ex, batch=2))
    h, w = ex.size
    s = ex.block.scale
    assert y.shape == (2, ex.block.out_channels, h * s, w * s)
    assert torch.isfinite(y).all()
    module.eval()
    with torch.no_grad():
        y = module(*_inputs(ex, batch=2))
    assert y.shape == (2, ex.block.out_channels, h * s, w * s)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("type_name, ex", CASES)
def test_gradients_reach_every_parameter(type_name, ex):
    ex = _example(type_name, ex)
    module = ex.block.build().train()
    inputs = tuple(x.requires_grad_() for x in _inputs(ex, batch=2))
    y = module(*inputs)
    y.square().mean().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{ex.id}: no gradient reaches parameter {name}"
        assert torch.isfinite(p.grad).all(), f"{ex.id}: non-finite gradient in {name}"
    for x in inputs:
        assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("type_name, ex", CASES)
def test_param_count_equals_built_module(type_name, ex):
    ex = _example(type_name, ex)
    block = ex.block
    numel = sum(p.numel() for p in block.build().parameters())
    assert block.params() == numel
    roles = block.params_by_role()
    assert set(roles) <= set(ROLES), f"unknown roles {set(roles) - set(ROLES)}"
    assert all(isinstance(n, int) and n >= 0 for n in roles.values())
    assert sum(roles.values()) == block.params()


@pytest.mark.parametrize("type_name, ex", CASES)
def test_macs_equal_fvcore(type_name, ex):
    ex = _example(type_name, ex)
    h, w = ex.size
    result = fvcore_macs(ex.block.build(), _inputs(ex, batch=1))
    assert not result.unsupported_ops, f"ops without a MAC handler: {dict(result.unsupported_ops)}"
    assert ex.block.macs(h, w) == result.total, dict(result.by_operator)


@pytest.mark.parametrize("type_name, ex", CASES)
def test_wrapped_in_graph_spec(type_name, ex):
    """The block inside a minimal GraphSpec: spec counts == built module, exact MACs == fvcore, shape."""
    ex = _example(type_name, ex)
    spec = wrap_block(ex.block)
    counts = archsearch.count(spec)
    module = archsearch.build(spec)
    assert counts.params == sum(p.numel() for p in module.parameters())
    assert sum(counts.params_by_role.values()) == counts.params
    h, w = ex.size
    x = torch.randn(1, spec.in_channels, h, w)
    result = fvcore_macs(module, x)
    assert not result.unsupported_ops, dict(result.unsupported_ops)
    assert archsearch.macs(spec, h, w) == result.total
    assert module(x).shape == (1, spec.out_channels, h * spec.scale, w * spec.scale)


@pytest.mark.parametrize("type_name, ex", CASES)
def test_same_seed_same_output(type_name, ex):
    ex = _example(type_name, ex)
    outs = []
    for _ in range(2):
        torch.manual_seed(1234)
        module = ex.block.build().eval()
        with torch.no_grad():
            outs.append(module(*_inputs(ex, batch=2)))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("type_name, ex", CASES)
def test_dict_round_trip(type_name, ex):
    ex = _example(type_name, ex)
    d = ex.block.to_dict()
    assert d["type"] == type_name
    assert block_from_dict(d) == ex.block
    assert block_from_dict(json.loads(json.dumps(d))) == ex.block  # tuples come back as lists from JSON
    assert block_from_dict({"type": type_name, **{k: v for k, v in d.items() if k != "type"}}) == ex.block


# ---------------------------------------------------------------------------------------------------------
# paper facts about particular blocks (beyond the generic contract)
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("r", [1, 3, 9])
def test_xunit_overhead_is_the_papers(r):
    """xUnit paper: an xUnit on C channels costs (r^2 + 4) C parameters (depthwise without bias, two BNs)."""
    from archsearch.blocks import XUnit

    assert XUnit(16, kernel_size=r).params() == (r * r + 4) * 16


@pytest.mark.parametrize("h, w", [(10, 9), (12, 8)])
def test_nsr_patch_selection_equals_per_pixel_kernel_choice(h, w):
    """NSR with pool p (nsr.py docstring): "the result equals a per-pixel choice of kernel by the pixel's patch".

    Reference: both convs run as ordinary 'same' (zero-padded) convs on the h x w image, each output pixel taking
    the aggregated kernels of its patch. The patch statistics pool the image zero-padded to a multiple of p (as
    documented). 10 x 9 is not a multiple of 4 (the last patch row/column is partial); 12 x 8 is (no padding).
    """
    import torch.nn.functional as F

    from archsearch.blocks import NSRResBlock

    block = NSRResBlock(channels=4, hidden_channels=8, sparsity_groups=2, pool=4)
    m = block.build().eval()
    p, g, c = 4, block.group_width, 4
    nh, nw = -(-h // p), -(-w // p)
    x = torch.randn(1, c, h, w)
    with torch.no_grad():
        y = m(x)
        def pool(t):
            return F.avg_pool2d(F.pad(t, (0, nw * p - w, 0, nh * p - h)), p).permute(0, 2, 3, 1).reshape(-1, t.shape[1])

        w1, b1 = m.kernels1(m._beta(m.select1, pool(x)))

        def per_patch(inp, weight, bias, cout):
            out = torch.zeros(1, cout, h, w)
            for u in range(nh * nw):
                i, j = divmod(u, nw)
                full = F.conv2d(inp, weight[u * cout:(u + 1) * cout], bias[u * cout:(u + 1) * cout], padding=1)
                out[..., p * i:p * i + p, p * j:p * j + p] = full[..., p * i:p * i + p, p * j:p * j + p]
            return out

        hidden = F.relu(per_patch(x, w1, b1, g))
        w2, b2 = m.kernels2(m._beta(m.select2, pool(hidden)))  # reference layout: conv2 selects from the hidden
        ref = x + per_patch(hidden, w2, b2, c)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_nsr_global_pool_equals_dense_conv_with_aggregated_kernels():
    """pool 0 (reference code): one image, kernels W_hat = sum_i beta_i W_i, then ordinary convs."""
    import torch.nn.functional as F

    from archsearch.blocks import NSRResBlock

    block = NSRResBlock(channels=4, hidden_channels=8, sparsity_groups=2, cardinality=2)
    m = block.build().eval()
    x = torch.randn(2, 4, 9, 7)
    with torch.no_grad():
        y = m(x)
        for n in range(2):
            pooled = x[n:n + 1].mean(dim=(2, 3))
            w1, b1 = m.kernels1(m._beta(m.select1, pooled))
            hidden = F.relu(F.conv2d(x[n:n + 1], w1, b1, padding=1))
            w2, b2 = m.kernels2(m._beta(m.select2, hidden.mean(dim=(2, 3))))
            ref = x[n:n + 1] + F.conv2d(hidden, w2, b2, padding=1)
            torch.testing.assert_close(y[n:n + 1], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(12, 8), (10, 9)])
def test_nsr_single_group_is_independent_of_pooling(size):
    """With one sparsity group the softmax weight is 1: the kernels do not depend on the pooled features, so
    pool=4 must give exactly what pool=0 gives -- whether or not the size is a multiple of 4."""
    from archsearch.blocks import NSRResBlock

    dense = NSRResBlock(channels=4, hidden_channels=8, sparsity_groups=1, pool=0).build().eval()
    patched = NSRResBlock(channels=4, hidden_channels=8, sparsity_groups=1, pool=4).build().eval()
    patched.load_state_dict(dense.state_dict())
    x = torch.randn(1, 4, *size)
    with torch.no_grad():
        torch.testing.assert_close(patched(x), dense(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("type_name, ex", CASES)
def test_export_reproduces_the_block(type_name, ex):
    """The generated torch-only source builds the same module: the framework's weights load strictly and the
    outputs are equal (``Block.export``, used by ``archsearch export``)."""
    from archsearch.export import python_source

    ex = _example(type_name, ex)
    spec = wrap_block(ex.block)
    model = archsearch.build(spec).eval()
    namespace: dict = {}
    exec(compile(python_source(spec), f"<export of {ex.id}>", "exec"), namespace)  # noqa: S102 - our own output
    net = namespace["Net"]().eval()
    net.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, spec.in_channels, *ex.size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (net(x) - model(x)).abs().max().item() <= 1e-6
