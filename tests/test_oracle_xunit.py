"""Oracle: the ``xunit`` block's official designs against an independent re-implementation of the official
modules (github kligvasser/xUnit ``super-resolution/models/modules/activations.py`` @
1643cd678c95f6f5c1a278f27babb1aed5612aec: ``xUnit``, ``xUnitS``, ``xUnitD``, each with ``batch_norm`` off -- the
default, BNs replaced by identities -- and on): same weights through a key mapping, max |difference| <= 1e-5 in
train and eval mode, equal parameter counts. The authors published xSRCNN/xDnCNN checkpoints (``.pkl``) in
their repository; none are in shared/pretrained, so the weights here are random.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archsearch.blocks import XUNIT_DESIGNS, XUnit
from archsearch.export import quiet_jit


class RefXUnit(nn.Module):
    """The official modules as read: a ``features`` Sequential whose BN slots are identities without batch_norm,
    output ``x * features(x)``. kind: full ([BN] ReLU DW [BN] sigmoid), slim (DW [BN] sigmoid), dense (1x1 [BN]
    ReLU DW [BN] sigmoid). Depthwise and 1x1 convs have biases (nn.Conv2d's default)."""

    def __init__(self, kind: str, c: int, kernel_size: int = 7, batch_norm: bool = False):
        super().__init__()

        def bn():
            return nn.BatchNorm2d(c) if batch_norm else nn.Identity()

        dw = nn.Conv2d(c, c, kernel_size, padding=kernel_size // 2, groups=c)
        layers = {
            "full": [bn(), nn.ReLU(), dw, bn(), nn.Sigmoid()],
            "slim": [dw, bn(), nn.Sigmoid()],
            "dense": [nn.Conv2d(c, c, 1), bn(), nn.ReLU(), dw, bn(), nn.Sigmoid()],
        }[kind]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.features(x)


def _map(ours: nn.Module, ref: RefXUnit) -> dict[str, torch.Tensor]:
    """Our stages are ours.features without the identities: pair the modules holding state, in order."""
    mine = [m for m in ours.features if list(m.state_dict())]
    theirs = [(i, m) for i, m in enumerate(ref.features) if list(m.state_dict())]
    assert [type(m) for m in mine] == [type(m) for _, m in theirs]
    out = {}
    for m, (i, _) in zip(mine, theirs):
        out.update({f"features.{i}.{k}": v for k, v in m.state_dict().items()})
    return out


CASES = [("official", "full", False), ("official_bn", "full", True), ("slim", "slim", False),
         ("slim_bn", "slim", True), ("dense", "dense", False), ("dense_bn", "dense", True)]


@pytest.mark.parametrize("design, kind, bn", CASES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_xunit_equals_official(design, kind, bn, mode):
    block = XUnit.design(design, 8)
    assert block.kernel_size == 7  # the official default
    ours = block.build()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in ours.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if name.endswith("running_var")
                        else torch.randn(t.shape, generator=g) * 0.3)
    ref = RefXUnit(kind, 8, 7, bn)
    ref.load_state_dict(_map(ours, ref), strict=True)
    assert block.params() == sum(p.numel() for p in ref.parameters()) == sum(p.numel() for p in ours.parameters())
    ours.train(mode == "train")
    ref.train(mode == "train")
    x = torch.randn(2, 8, 12, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(x) - ref(x)).abs().max().item()
    assert diff <= 1e-5, diff


def test_official_designs_have_no_bn_unless_named():
    for name in ("official", "slim", "dense"):
        assert not XUNIT_DESIGNS[name]["pre_bn"] and not XUNIT_DESIGNS[name]["post_bn"], name
        assert XUNIT_DESIGNS[f"{name}_bn"]["post_bn"], name
    assert XUnit.design("slim", 8, kernel_size=3).kernel_size == 3
    assert XUnit.design("BN+RL+CD+BN+GS", 8).kernel_size == 9  # the paper's designs keep its 9x9


@pytest.mark.parametrize("bias", [True, False])
def test_one_by_one_xunit_is_the_depthwise_conv(tmp_path, bias):
    """r = 1 computes its depthwise conv as a per-channel scale and shift (speed): same values and gradients as
    nn.Conv2d's 1x1 depthwise conv on the same weights, NCHW and NHWC; traced and exported it is that conv."""
    from archsearch import build, get_family
    from archsearch.blocks.xunit import _DepthwiseScale
    from archsearch.export import export_model, load_standalone

    torch.manual_seed(0)
    fast = _DepthwiseScale(6, 6, 1, groups=6, bias=bias)
    conv = nn.Conv2d(6, 6, 1, groups=6, bias=bias)
    conv.load_state_dict(fast.state_dict())
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(3, 6, 5, 7).contiguous(memory_format=fmt).requires_grad_()
        a, b = fast(x), conv(x)
        assert (a - b).abs().max() <= 1e-6 and a.is_contiguous(memory_format=fmt)
        ga = torch.autograd.grad(a.square().sum(), [x, fast.weight])
        gb = torch.autograd.grad(b.square().sum(), [x, conv.weight])
        assert all(torch.allclose(u, v, atol=1e-5) for u, v in zip(ga, gb))
    with quiet_jit():  # TorchScript is deprecated in torch 2.13; the traced form is what exporters see
        traced = torch.jit.trace(fast, torch.randn(1, 6, 4, 4))
    assert "conv" in str(traced.inlined_graph).lower()
    spec = XUnit(6, kernel_size=1, depthwise_bias=bias)
    assert isinstance(spec.build().features[-2 if spec.post_bn else -1], _DepthwiseScale)
    net_spec = get_family("xnet").fn(depth=3, width=6, xunit_kernel_size=1, name="xnet_r1")
    model = build(net_spec).eval()
    paths = export_model(net_spec, tmp_path, state_dict=model.state_dict())
    exported = load_standalone(paths["py"]).Net()
    exported.load_state_dict(model.state_dict())
    exported.eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert (exported(x) - model(x)).abs().max() <= 1e-6
