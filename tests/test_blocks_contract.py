"""Contract test kit: the same behavioural checks for every registered block type.

Parametrized over the block registry x each block's own small examples (``Block.examples()``, collected by
``archsearch.testing.blocks``): a new block gets all of these tests without new test code -- and a registered type
without an example fails.
"""

from __future__ import annotations

import pytest
import torch

from archsearch.spec import block_types
from archsearch.testing import blocks as kit
from archsearch.testing.blocks import BlockExample, block_cases, block_examples

CASES = block_cases()
EXAMPLES = block_examples()


def _example(type_name: str, ex: BlockExample | None) -> BlockExample:
    if ex is None:
        pytest.fail(f"registered block type {type_name!r} has no example: add at least one small instance "
                    "(<= 16 channels) to its class's `examples()` so the contract kit covers it")
    assert ex.block.type == type_name
    return ex


def test_every_registered_block_has_examples():
    missing = sorted(set(block_types()) - set(EXAMPLES))
    assert not missing, f"block types without examples (Block.examples()): {missing}"
    assert all(ex.block.type == t for t, examples in EXAMPLES.items() for ex in examples)


def test_example_sizes_follow_house_style():
    for examples in EXAMPLES.values():
        for ex in examples:
            kit.check_house_size(ex)


@pytest.mark.parametrize("type_name, ex", CASES)
def test_forward_shape_and_finite(type_name, ex):
    kit.check_forward_shape_and_finite(_example(type_name, ex))


@pytest.mark.parametrize("type_name, ex", CASES)
def test_gradients_reach_every_parameter(type_name, ex):
    kit.check_gradients_reach_every_parameter(_example(type_name, ex))


@pytest.mark.parametrize("type_name, ex", CASES)
def test_param_count_equals_built_module(type_name, ex):
    kit.check_param_count_equals_built_module(_example(type_name, ex))


@pytest.mark.parametrize("type_name, ex", CASES)
def test_macs_equal_fvcore(type_name, ex):
    kit.check_macs_equal_fvcore(_example(type_name, ex))


@pytest.mark.parametrize("type_name, ex", CASES)
def test_wrapped_in_graph_spec(type_name, ex):
    """The block inside a minimal GraphSpec: spec counts == built module, exact MACs == fvcore, shape."""
    kit.check_wrapped_in_graph_spec(_example(type_name, ex))


@pytest.mark.parametrize("type_name, ex", CASES)
def test_same_seed_same_output(type_name, ex):
    kit.check_same_seed_same_output(_example(type_name, ex))


@pytest.mark.parametrize("type_name, ex", CASES)
def test_dict_round_trip(type_name, ex):
    kit.check_dict_round_trip(_example(type_name, ex))


@pytest.mark.parametrize("type_name, ex", CASES)
def test_export_reproduces_the_block(type_name, ex):
    """The generated torch-only source builds the same module (``Block.export``, used by ``archsearch export``)."""
    kit.check_export_reproduces_the_block(_example(type_name, ex))


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
