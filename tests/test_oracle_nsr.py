"""Oracle: our ``nsr_residual`` block (reference layout) against an independent re-implementation of the authors'
``Block`` (github ychfan/pt_ir ``models/wdsr_nsr.py`` @ bb6933c813bd8a1a3fc50cdbd672c9e942b13a71, see
``tests/ref_pt_ir.py``), on the same weights (key mapping ``ref_pt_ir.block_to_reference``): max |difference|
<= 1e-5 in train and eval mode, equal parameter counts. The authors published no NSR weights that we can load
here (their Google-Drive checkpoints are not in shared/pretrained), so the weights are random.
"""

from __future__ import annotations

import pytest
import torch
from ref_pt_ir import RefBlock, block_to_reference

from archsearch.blocks import NSRResBlock

# (units, hidden per group, k, d, regime, weight_norm): the reference's group width is int(units * multiplier);
# our hidden_channels is that width (same_flops) or k times it (same_size).
CASES = [
    (8, 8, 4, 4, "same_flops", True),   # EDSR+NSR's shape: width multiplier 1, 4 groups, cardinals
    (8, 16, 2, 8, "same_flops", True),  # WDSR-like: wider hidden layer, 8 cardinals
    (8, 4, 4, 2, "same_size", True),    # Table 2's same-size regime (multiplier 1/k)
    (8, 8, 3, 1, "same_flops", False),  # the reference Block with weight_norm=identity
    (16, 16, 4, 16, "same_flops", True),  # the reference's default 16 cardinals
]


def _pair(units, width, k, d, regime, wn):
    hidden = width if regime == "same_flops" else width * k
    # with weight norm branch_scale is conv2's initial gain (the reference's res_scale); without, none
    ours = NSRResBlock(units, hidden, 3, k, d, regime, weight_norm=wn, branch_scale=0.25 if wn else 1.0).build()
    torch.manual_seed(0)
    for p in ours.parameters():  # generic weights (the inits zero the biases)
        with torch.no_grad():
            p.copy_(torch.randn_like(p) * 0.3)
    ref = RefBlock(units, width, 3, k, d, wn, 0.25)
    ref.load_state_dict(block_to_reference(ours.state_dict(), wn=wn), strict=True)
    return ours, ref


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_block_equals_reference(case, mode):
    ours, ref = _pair(*case)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    ours.train(mode == "train")
    ref.train(mode == "train")
    x = torch.randn(3, case[0], 13, 11, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(x) - ref(x)).abs().max().item()
    assert diff <= 1e-5, diff


def test_gradients_equal_reference():
    """Training follows the same path: equal gradients for every mapped parameter."""
    ours, ref = _pair(8, 8, 4, 4, "same_flops", True)
    x = torch.randn(2, 8, 12, 10, generator=torch.Generator().manual_seed(3))
    ours(x).square().sum().backward()
    ref(x).square().sum().backward()
    grads = block_to_reference({n: p.grad for n, p in ours.named_parameters()})
    for name, p in ref.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-5)


def test_hidden_groups_is_not_the_reference():
    """The named ablation ``layout: hidden_groups`` (paper Eq. 4/9) differs from the reference in size."""
    ref = NSRResBlock(8, 8, 3, 4, 2, "same_flops")
    hid = NSRResBlock(8, 8, 3, 4, 2, "same_flops", layout="hidden_groups")
    assert ref.params() != hid.params()
