"""The reference zoo: exact sizes, spec counts == built modules, exact MACs == fvcore, official DnCNN weights."""

from __future__ import annotations

import math

import pytest
import torch
from restore_data import shared_dir
from torch import nn

from archsearch import build, count, macs, zoo_names, zoo_spec
from archsearch.blocks.conv import load_official_dncnn
from archsearch.testing.macs import fvcore_macs

ZOO = zoo_names()


def _small_size(name: str) -> tuple[int, int]:
    """Input size for a zoo model in unit tests: LR input for SR-by-upsampler nets, small for MemNet (80 layers)."""
    spec = zoo_spec(name)
    if spec.scale != 1:
        return (12, 12)
    if name.startswith("memnet"):
        return (16, 16)
    return (24, 24)


@pytest.mark.parametrize("name", ZOO)
def test_spec_counts_equal_built_module(name):
    spec = zoo_spec(name)
    c = count(spec)
    module = build(spec)
    assert c.params == sum(p.numel() for p in module.parameters())
    assert sum(c.params_by_role.values()) == c.params
    assert 0.0 <= c.activation_param_pct <= 100.0


@pytest.mark.parametrize("name", ZOO)
def test_macs_equal_fvcore(name):
    spec = zoo_spec(name)
    h, w = _small_size(name)
    result = fvcore_macs(build(spec), torch.randn(1, spec.in_channels, h, w))
    assert not result.unsupported_ops, f"ops without a MAC handler: {dict(result.unsupported_ops)}"
    assert macs(spec, h, w) == result.total, dict(result.by_operator)


@pytest.mark.parametrize("name", ZOO)
def test_forward_shape(name):
    spec = zoo_spec(name)
    h, w = (8, 8) if spec.scale != 1 else (16, 16)
    module = build(spec).eval()
    with torch.no_grad():
        y = module(torch.randn(1, spec.in_channels, h, w))
    assert y.shape == (1, spec.out_channels, h * spec.scale, w * spec.scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", [n for n in ZOO if zoo_spec(n).scale == 1])
def test_macs_per_pixel_is_the_per_image_rate(name):
    """Without per-image terms (global pooling MLPs) exact MACs = MACs/pixel x pixels."""
    spec = zoo_spec(name)
    per_image = macs(spec, 20, 20) - round(count(spec).macs_per_pixel * 400)
    if any(n.block.type in ("csc", "lidia") for n in spec.nodes):
        # CSC pads every shifted copy (blocks/csc.py), LIDIA pads for its patches and search window
        # (blocks/lidia.py): a border overhead, shrinking relative to the image
        larger = macs(spec, 80, 80) - round(count(spec).macs_per_pixel * 6400)
        assert per_image > 0 and larger / 6400 < per_image / 400
    elif not any(n.block.type == "nsr_residual" for n in spec.nodes):
        assert per_image == 0
    else:  # NSR with global pooling: selection MLPs and kernel aggregation, paid once per image
        assert per_image == macs(spec, 10, 10) - round(count(spec).macs_per_pixel * 100) > 0


# ---------------------------------------------------------------------------------------------------------
# exact sizes (docs/zoo.md) and the papers' reported sizes
# ---------------------------------------------------------------------------------------------------------
#: Every zoo model's exact size. Where a reference implementation exists, the number is derived from it in the
#: tests below (the re-implemented reference's numel, or the Caffe prototxt's learnable blobs), never only here.
EXACT = {
    "dncnn_s": 556_096,          # = ReferenceDnCNN numel (official PyTorch layout), below
    "xdncnn": 303_680,           # xUnit paper's (r^2 + 4) C count, 303K
    "convnet_fig4": 75_200,
    "xnet_fig4": 91_264,
    "srcnn": 57_281,
    "xsrcnn_f": 32_673,
    "xsrcnn_c": 44_167,
    "memnet_m6r6": 694_851,      # = the prototxt layer list with one ReconNet (test_oracle_memnet)
    "memnet_m6r6_ms": 695_497,   # = the M6R6 prototxt's learnable blobs (train prototxt's sharing)
    "memnet_m6r6_nl": 606_147,
    "memnet_m6r6_ns": 568_131,
    "nsr_dn_baseline": 591_969,
    "nsr_dn_sparse_minus": 298_657,
    "nsr_dn_sparse_plus": 594_593,
    "wdsr_nsr_x2": 1_260_756,    # = pt_ir MODEL(units 32, width multiplier 1, k 4, 16 cardinals) numel
    "edsr_nsr_x2": 4_877_812,    # = pt_ir MODEL(units 64, multiplier 1, k 4, 16 cardinals) = NSR README
    "edsr_nsr_x3": 4_887_637,    # NSR README
    "edsr_nsr_x4": 4_901_392,    # NSR README
    "cscnet": 63_700,            # = 3 x 175 x 11 x 11 + 175, the authors' sigma=25 model (test_csc)
    "lidia": 61_589,             # the LIDIA authors' gray models less the fixed blur kernel (test_oracle_lidia)
    "lidia_s": 40_226,           # LIDIA-S (small_network=True)
    "lidia_color": 94_067,       # LIDIA RGB (5x5x3 patches, 80 features)
}


def test_every_zoo_model_has_an_exact_size():
    assert set(EXACT) == set(ZOO)


@pytest.mark.parametrize("name, params", EXACT.items())
def test_exact_sizes(name, params):
    """The spec's count (no module built) and the built module's numel both equal the asserted size."""
    spec = zoo_spec(name)
    assert count(spec).params == params
    assert sum(p.numel() for p in build(spec).parameters()) == params


@pytest.mark.parametrize("name, ref_args", [
    ("edsr_nsr_x2", (64, 1, 4, 16, 16, 2)),
    ("edsr_nsr_x3", (64, 1, 4, 16, 16, 3)),
    ("edsr_nsr_x4", (64, 1, 4, 16, 16, 4)),
    ("wdsr_nsr_x2", (32, 1, 4, 16, 16, 2)),
])
def test_nsr_nets_have_the_reference_size(name, ref_args):
    """Derived from the reference code: our spec's count == the numel of the re-implemented pt_ir MODEL with the
    same arguments (tests/ref_pt_ir.py); the NSR README's sizes for EDSR+NSR are in EXACT."""
    from ref_pt_ir import RefModel

    assert count(zoo_spec(name)).params == sum(p.numel() for p in RefModel(*ref_args).parameters())


def _conv_weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.dim() == 4)


def test_memnet_sizes_are_the_prototxts():
    """memnet_m6r6_ms == the Caffe M6R6 prototxt's learnable blobs; its conv weights == the prototxt's conv weight
    blobs (shared recursions counted once) -- the paper's 677K."""
    from ref_memnet_caffe import CaffeNet, learnable_blob_values, memnet_layers

    layers = memnet_layers(6, 6)
    spec = zoo_spec("memnet_m6r6_ms")
    assert count(spec).params == learnable_blob_values(layers)
    ref = CaffeNet(layers)
    ref_conv_weights = sum(p.numel() for p in ref.parameters() if p.dim() == 4)
    assert _conv_weights(build(spec)) == ref_conv_weights
    assert abs(ref_conv_weights - 677_000) / 677_000 < 0.005  # paper: 677K
    assert count(zoo_spec("memnet_m6r6")).params == learnable_blob_values(memnet_layers(6, 6, multi=False))


@pytest.mark.parametrize("name, reported_k", [("srcnn", 57), ("xsrcnn_f", 32), ("xsrcnn_c", 44), ("xdncnn", 303)])
def test_xunit_paper_sizes_truncate_to_reported(name, reported_k):
    """The xUnit paper's Tables 1 and 3 give sizes in K; ours truncate to them (303,680 -> 303K, 32,673 -> 32K)."""
    assert math.floor(count(zoo_spec(name)).params / 1000) == reported_k


@pytest.mark.parametrize("name, reported", [
    ("nsr_dn_baseline", 0.59e6),
    ("nsr_dn_sparse_minus", 0.30e6),
    ("nsr_dn_sparse_plus", 0.60e6),
])
def test_nsr_paper_sizes_within_2pct(name, reported):
    assert abs(count(zoo_spec(name)).params - reported) / reported < 0.02


def test_wdsr_nsr_x2_convs_are_table_2s_size():
    """NSR Table 2 gives one size per row (1.2M for 16 blocks): the dense WDSR's, which the same-size NSR net
    matches in its convs; the selection MLPs (16 blocks x 2 x Linear(32, 64)) come on top."""
    c = count(zoo_spec("wdsr_nsr_x2"))
    assert abs(c.params - c.params_by_role["selection"] - 1.2e6) / 1.2e6 < 0.02


# ---------------------------------------------------------------------------------------------------------
# DnCNN official weights
# ---------------------------------------------------------------------------------------------------------
class ReferenceDnCNN(nn.Module):
    """The DnCNN authors' PyTorch model as described in shared/datasets/README.md: an ``nn.Sequential`` named
    ``dncnn``: conv 1->64 with bias, ReLU, 15 x (conv 64->64 without bias, BN(eps 1e-4), ReLU), conv 64->1
    without bias; output = input - dncnn(input)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, 64, 3, padding=1, bias=True), nn.ReLU(inplace=True)]
        for _ in range(15):
            layers += [nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64, eps=1e-4),
                       nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(64, 1, 3, padding=1, bias=False))
        self.dncnn = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.dncnn(x)


def test_reference_dncnn_has_the_zoo_size():
    assert sum(p.numel() for p in ReferenceDnCNN().parameters()) == count(zoo_spec("dncnn_s")).params


def test_official_dncnn_weights_give_the_reference_output():
    path = shared_dir() / "pretrained" / "dncnn_s_sigma25.pt"
    if not path.exists():
        pytest.skip(f"official DnCNN weights not found at {path} (set ARCHSEARCH_SHARED to the shared folder)")
    ours = build(zoo_spec("dncnn_s")).eval()
    load_official_dncnn(ours, str(path))  # strict: every key must match
    ref = ReferenceDnCNN().eval()
    ref.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (ours(x) - ref(x)).abs().max().item()
    assert diff <= 1e-6
