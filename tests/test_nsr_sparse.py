"""NSR's per-image GEMM convolution (``nsr._image_conv``, the block's forward path with global pooling) computes
what the former formulation -- the aggregated kernels as one grouped conv with groups = batch
(``nsr._grouped_forward`` / ``nsr._grouped_conv``) -- computes: outputs and gradients, train and eval, several k,
d, regimes, batch sizes (1 included), odd and non-square sizes, kernel sizes 1/3/5; and the counted MACs did not
change (exact values of today's counts)."""

from __future__ import annotations

import pytest
import torch

from archsearch.blocks import NSRResBlock, nsr
from archsearch.export import quiet_jit

CASES = [  # (channels, hidden, k, d, regime, kernel, extra)
    (8, 16, 4, 2, "same_size", 3, {}),
    (8, 8, 2, 1, "same_flops", 3, dict(branch_scale=0.3)),
    (8, 8, 4, 4, "same_flops", 3, dict(weight_norm=True, branch_scale=0.25)),
    (4, 8, 2, 1, "same_size", 5, dict(bias=False)),
    (4, 8, 2, 2, "same_size", 1, dict(shared_selection=True)),
    (6, 12, 3, 1, "same_size", 3, dict(layout="hidden_groups", selection="sigmoid")),
    (24, 24, 2, 1, "same_flops", 3, {}),  # cin * 9 > 160: one GEMM per tap instead of stacked taps
]


def _block(c, hid, k, d, regime, ks, extra):
    torch.manual_seed(0)
    m = NSRResBlock(c, hid, ks, k, d, regime, **extra).build()
    with torch.no_grad():
        for p in m.parameters():  # generic weights (some inits zero the biases)
            p.copy_(torch.randn_like(p) * 0.3)
    return m


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"c{c[0]}-h{c[1]}-k{c[2]}-d{c[3]}-{c[4]}-ks{c[5]}")
@pytest.mark.parametrize("batch, size", [(1, (7, 9)), (3, (5, 5)), (5, (8, 11))])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_new_path_equals_grouped_conv(case, batch, size, mode):
    m = _block(*case).train(mode == "train")
    x = torch.randn(batch, case[0], *size, generator=torch.Generator().manual_seed(1), requires_grad=True)
    y = m(x)
    ref = nsr._grouped_forward(m, x)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    params = [p for p in m.parameters()]
    grads = torch.autograd.grad(y, [x] + params, g)
    ref_grads = torch.autograd.grad(ref, [x] + params, g)
    for name, a, b in zip(["input"] + [n for n, _ in m.named_parameters()], grads, ref_grads):
        # fp32 summation order differs (GEMMs vs grouped conv): 1e-5 of the gradient's scale, as the oracle tests
        scale = b.abs().max().clamp_min(1e-6).item()
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * scale, msg=name)


@pytest.mark.parametrize("relu, res, scale, bias", [(True, False, 1.0, True), (False, True, 0.5, False),
                                                    (False, False, 1.0, True)])
def test_image_conv_gradcheck(relu, res, scale, bias):
    """The hand-written backward of the per-image conv (float64 gradcheck), with each epilogue, both GEMM forms."""
    g = torch.Generator().manual_seed(2)
    for cin, ks in ((2, 3), (20, 3), (3, 5)):
        x = torch.randn(2, cin, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
        w = torch.randn(2, 3, cin, ks, ks, dtype=torch.float64, generator=g, requires_grad=True)
        b = torch.randn(2, 3, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
        r = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=g, requires_grad=True) if res else None
        inputs = (x, w, b, r)
        assert torch.autograd.gradcheck(lambda *t: nsr._image_conv(*t, relu, scale), inputs)
        with torch.no_grad():
            ref = nsr._grouped_conv(x, w, b, ks // 2)
            ref = ref.relu() if relu else (r + scale * ref if res else ref)
            torch.testing.assert_close(nsr._image_conv(x, w, b, r, relu, scale), ref)


def test_deterministic():
    m = _block(*CASES[0]).train()
    x = torch.randn(3, 8, 9, 7, generator=torch.Generator().manual_seed(3), requires_grad=True)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        outs = []
        for _ in range(2):
            y = m(x)
            outs.append((y, *torch.autograd.grad(y.square().sum(), [x, m.weight1])))
    finally:
        torch.use_deterministic_algorithms(previous)
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_traced_form_is_the_grouped_conv():
    """Traced (fvcore's MAC count, ONNX/TorchScript export) the block is plain convs, with the same outputs."""
    m = _block(*CASES[0]).eval()
    x = torch.randn(2, 8, 6, 6)
    with quiet_jit():  # TorchScript is deprecated in torch 2.13; the traced form is what exporters see
        traced = torch.jit.trace(m, x, check_trace=False)
    assert "_ImageConv" not in str(traced.inlined_graph)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), m(x), rtol=1e-5, atol=1e-5)


def test_macs_unchanged():
    """Today's counts (the spec's, not the implementation's): Fig. 5's shapes and a WDSR-NSR-like block."""
    assert NSRResBlock(64, 64, 3, 4, regime="same_size").macs(64, 64) == 75_899_520
    assert NSRResBlock(64, 64, 3, 8, regime="same_flops").macs(64, 64) == 303_106_048
    spec = NSRResBlock(32, 128, 3, 4, 4, "same_flops", weight_norm=True, branch_scale=0.25)
    assert spec.macs(48, 48) == 170_830_976
    assert NSRResBlock(16, 32, 3, 2, pool=8).macs(20, 20) == 2_756_736
    assert NSRResBlock(64, 64, 3, 4, regime="same_size").params() == 74_376
