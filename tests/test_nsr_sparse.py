"""NSR's per-image convolution (``nsr._image_conv``, the block's forward path with global pooling) -- in both of its
forms, one oneDNN conv per image (``_OneDnnImageConv``, fp32 on a CPU with oneDNN) and per-image GEMMs
(``_ImageConv``, elsewhere) -- computes what the former formulation -- the aggregated kernels as one grouped conv with groups = batch
(``nsr._grouped_forward`` / ``nsr._grouped_conv``) -- computes: outputs and gradients, train and eval, several k,
d, regimes, batch sizes (1 included), odd and non-square sizes, kernel sizes 1/3/5; and the counted MACs did not
change (exact values of today's counts)."""

from __future__ import annotations

import contextlib

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


ONEDNN = torch.backends.mkldnn.is_available()
FORMS = [pytest.param("onednn", marks=pytest.mark.skipif(not ONEDNN, reason="this PyTorch has no oneDNN")), "gemm"]


@contextlib.contextmanager
def _form(form: str):
    """The form to run whatever the image size: oneDNN's per-image convs (where oneDNN runs), or the GEMM form
    (what runs on small images, CUDA, float64 or with oneDNN off)."""
    chooser = nsr._onednn
    nsr._onednn = (lambda x, cin, cout: nsr._onednn_runs(x)) if form == "onednn" else (lambda *_shape: False)
    try:
        yield
    finally:
        nsr._onednn = chooser


def test_the_form_follows_the_measured_rule():
    """oneDNN per image where the image is big enough for one call each to pay (the rule's measured cases), the
    GEMM form below that, and whenever oneDNN cannot run."""
    def chosen(c, h, w, cin, cout):
        return nsr._onednn(torch.empty(2, c, h, w), cin, cout)
    if ONEDNN:
        assert chosen(64, 64, 64, 64, 16) and chosen(16, 64, 64, 16, 64)  # Fig. 5: same size k = 4, both convs
        assert chosen(64, 64, 64, 64, 8) and chosen(32, 48, 48, 32, 16) and chosen(32, 40, 40, 32, 32)
        assert chosen(64, 32, 32, 64, 64)
    for shape in ((32, 40, 40, 32, 16), (64, 48, 48, 64, 8), (32, 32, 32, 32, 32), (64, 64, 64, 64, 4),
                  (64, 24, 24, 64, 64)):
        assert not chosen(*shape), shape  # the zoo's nsr_dn models train on 40 x 40 patches with 16-wide groups
    assert not nsr._onednn(torch.empty(2, 64, 64, 64, dtype=torch.float64), 64, 16)
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        assert not nsr._onednn(torch.empty(2, 64, 64, 64), 64, 16)
    finally:
        torch.backends.mkldnn.enabled = previous


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
@pytest.mark.parametrize("form", FORMS)
def test_new_path_equals_grouped_conv(case, batch, size, mode, form):
    m = _block(*case).train(mode == "train")
    x = torch.randn(batch, case[0], *size, generator=torch.Generator().manual_seed(1), requires_grad=True)
    with _form(form):
        y = m(x)
    assert type(y.grad_fn).__name__ == ("_OneDnnImageConvBackward" if form == "onednn" else "_ImageConvBackward")
    ref = nsr._grouped_forward(m, x)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    params = [p for p in m.parameters()]
    with _form(form):
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


@pytest.mark.parametrize("form", FORMS)
def test_image_conv_forms_agree_with_channels_last_input(form):
    """Either form takes an NHWC batch (a user's ``channels_last: true``) and keeps its layout; values as NCHW."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 6, 7, 5, generator=g)
    w, b, r = torch.randn(3, 4, 6, 3, 3, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, 4, 7, 5, generator=g)
    cl = torch.channels_last
    for relu, res, scale in ((True, None, 1.0), (False, r, 1.0), (False, r, 0.5), (False, None, 1.0)):
        xs = [x.clone().requires_grad_(), x.contiguous(memory_format=cl).requires_grad_()]
        with _form(form):
            ys = [nsr._image_conv(xi, w, b, None if res is None else res.contiguous(memory_format=f), relu, scale)
                  for xi, f in zip(xs, (torch.contiguous_format, cl))]
            gxs = [torch.autograd.grad(yi, xi, torch.ones_like(yi))[0] for yi, xi in zip(ys, xs)]
        ref = nsr._grouped_conv(x, w, b, 1)
        ref = ref.relu() if relu else (r + scale * ref if res is not None else ref)
        for yi in ys:
            torch.testing.assert_close(yi, ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gxs[1], gxs[0], rtol=1e-5, atol=1e-5)
        if form == "onednn":
            assert ys[1].is_contiguous(memory_format=cl)


@pytest.mark.parametrize("form", FORMS)
def test_deterministic(form):
    m = _block(*CASES[0]).train()
    x = torch.randn(3, 8, 9, 7, generator=torch.Generator().manual_seed(3), requires_grad=True)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        outs = []
        for _ in range(2):
            with _form(form):
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
