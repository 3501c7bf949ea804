"""CSC block and CSCNet (Simon & Elad, NeurIPS 2019): the authors' weights through the one loader, output == an independent
re-implementation of the reference forward, the Set12 number, the padding rules, the families.

Reference: github drorsimon/CSCNet at commit 09dcf5ee0172008c31e50023607dbd8ee8efc07d, ``model/modules.py``
(``SoftThreshold``, ``ConvLista_T._split_image`` and ``forward``) and ``model/utils.py`` (``calc_pad_sizes``).
"""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from restore_data import requires_shared, shared_dir, shared_root

from archsearch import build, count, get_family, macs, zoo_spec
from archsearch.blocks import CSC
from archsearch.blocks.csc import csc_pads, csc_reflect, reflect_index
from archsearch.testing.macs import fvcore_macs
from archsearch.weights import load_weights, read_weights, state_dict_of

CSCNET_PARAMS = 63_700  # 3 x 175 x 11 x 11 + 175 (shared/datasets/README.md, the authors' file)


def reference_forward(x, A, B, C, threshold, kernel_size: int, stride: int, unfoldings: int) -> torch.Tensor:
    """Plain-PyTorch re-implementation of ``ConvLista_T.forward`` (drorsimon/CSCNet, see the module docstring):
    per shift (i, j) an ``F.pad(mode='reflect')`` of the image with (left - j, right + j, top - i, bottom + i),
    a constant-padded mask of ones marking the image inside it, LISTA on the stacked copies, the output selected
    by the mask and averaged over the copies. Written independently of archsearch/blocks/csc.py (which gathers
    the copies with one index and crops by slicing)."""
    k, s = kernel_size, stride

    def soft(z):  # SoftThreshold.forward, literally: two masks
        return (z > threshold).float() * (z - threshold) + (z < -threshold).float() * (z + threshold)

    n, c, h, w = x.shape
    if s == 1:
        padded, valid = x, torch.ones_like(x)
    else:
        def pads(size):  # calc_pad_sizes: s before; after: s + what makes (size + s - k) a multiple of s
            r = (size + s - k) % s
            return s, (0 if r == 0 else s - r) + s

        (top, bot), (left, right) = pads(h), pads(w)
        copies, masks = [], []
        for i in range(s):
            for j in range(s):
                p = (left - j, right + j, top - i, bot + i)
                copies.append(F.pad(x, p, mode="reflect"))
                masks.append(F.pad(torch.ones_like(x), p, mode="constant"))
        padded = torch.stack(copies, dim=1).reshape(n * s * s, c, *copies[0].shape[-2:])
        valid = torch.stack(masks, dim=1).reshape(n * s * s, c, *masks[0].shape[-2:])
    gamma = soft(F.conv2d(padded, B, stride=s))
    for _ in range(unfoldings - 1):
        gamma = soft(gamma - F.conv2d(F.conv_transpose2d(gamma, A, stride=s) - padded, B, stride=s))
    out = F.conv_transpose2d(gamma, C, stride=s)
    return torch.masked_select(out, valid.bool()).reshape(n, s * s, c, h, w).mean(dim=1)


def _authors_state() -> dict[str, torch.Tensor]:
    path = shared_dir() / "pretrained" / "cscnet_sigma25.pt"
    if not path.exists():
        pytest.skip(f"CSCNet weights not found at {path} (set ARCHSEARCH_SHARED to the shared folder)")
    return torch.load(path, map_location="cpu", weights_only=True)


def _cscnet():
    path = shared_dir() / "pretrained" / "cscnet_sigma25.pt"
    if not path.exists():
        pytest.skip(f"CSCNet weights not found at {path}")
    model = build(zoo_spec("cscnet")).eval()
    load_weights(model, path)  # the one loader; strict
    return model


# ---------------------------------------------------------------------------------------------------------
# sizes and counts
# ---------------------------------------------------------------------------------------------------------
def test_cscnet_size():
    spec = zoo_spec("cscnet")
    assert count(spec).params == CSCNET_PARAMS
    assert sum(p.numel() for p in build(spec).parameters()) == CSCNET_PARAMS
    assert count(spec).params_by_role == {"conv": 3 * 175 * 121, "activation": 175, "normalization": 0,
                                          "selection": 0, "gate": 0, "other": 0}


def test_cscnet_macs_count_every_shifted_copy():
    """MACs are per shifted copy: 64 copies x 24 applications (12 of B, 11 of A, 1 of C) x 175 x 121 per code
    position, plus the 64-way average (1 MAC per averaged value); checked against fvcore at a size that is not a
    multiple of 8."""
    spec = zoo_spec("cscnet")
    block = spec.nodes[0].block
    h, w = 37, 29
    ch, cw = block.code_size(h, w)
    hp, wp = h + sum(csc_pads(h, 11, 8)), w + sum(csc_pads(w, 11, 8))
    assert (hp - 11) % 8 == 0 and (wp - 11) % 8 == 0 and (ch, cw) == ((hp - 11) // 8 + 1, (wp - 11) // 8 + 1)
    expected = 64 * 24 * 175 * 121 * ch * cw + 64 * h * w
    assert macs(spec, h, w) == expected
    assert fvcore_macs(build(spec), torch.rand(1, 1, h, w)).total == expected
    # the rate: the s^2 copies cancel the stride's 1/s^2 -> 24 x 175 x 121 + 64 per pixel, whatever the stride
    assert count(spec).macs_per_pixel == 24 * 175 * 121 + 64
    assert macs(spec, 256, 256) > count(spec).macs_per_pixel * 256 * 256  # + the padding overhead


def test_one_shift_costs_one_over_stride_squared():
    full, one = CSC(filters=8, kernel_size=5, stride=4, unfoldings=3), \
        CSC(filters=8, kernel_size=5, stride=4, unfoldings=3, average_shifts=False)
    assert one.macs(40, 40) * 16 + 16 * 40 * 40 == full.macs(40, 40)
    assert one.params() == full.params()


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_reflect_index_is_torch_reflect_padding(n):
    x = torch.arange(float(n)).reshape(1, 1, 1, n)
    pad = n - 1
    if pad:
        ref = F.pad(x, (pad, pad, 0, 0), mode="reflect")[0, 0, 0].tolist()
        assert [float(reflect_index(i, n)) for i in range(-pad, n + pad)] == ref
    assert reflect_index(-5, 1) == reflect_index(4, 1) == 0
    # iterated mirror beyond torch's limit: period 2(n - 1)
    if n > 1:
        assert all(reflect_index(i, n) == reflect_index(i + 2 * (n - 1), n) for i in range(-3 * n, 3 * n))
    positions = torch.arange(-3 * n - 2, 3 * n + 2)
    assert csc_reflect(positions, n).tolist() == [reflect_index(int(i), n) for i in positions]


# ---------------------------------------------------------------------------------------------------------
# the reference forward
# ---------------------------------------------------------------------------------------------------------
def _weights(module, block: CSC):
    if block.tied:
        d = module.dictionary
        return d, d, d
    return module.decoder, module.encoder, module.output


@pytest.mark.parametrize("block, size", [
    (CSC(filters=8, kernel_size=5, stride=2, unfoldings=3), (13, 10)),
    (CSC(filters=8, kernel_size=5, stride=3, unfoldings=4, tied=True), (17, 14)),
    (CSC(filters=8, kernel_size=5, stride=1, unfoldings=3), (12, 9)),
    (CSC(filters=6, kernel_size=4, stride=4, unfoldings=2), (15, 21)),
    (CSC(channels=3, filters=8, kernel_size=3, stride=2, unfoldings=2), (16, 11)),
])
def test_block_equals_reference_forward(block, size):
    torch.manual_seed(3)
    module = block.build().eval()
    with torch.no_grad():
        module.threshold.uniform_(-0.05, 0.3)  # some negative thresholds, as in the authors' weights
        x = torch.rand(2, block.channels, *size)
        a, b, c = _weights(module, block)
        ref = reference_forward(x, a, b, c, module.threshold, block.kernel_size, block.stride, block.unfoldings)
        assert (module(x) - ref).abs().max().item() <= 1e-6


@pytest.mark.parametrize("size", [(40, 40), (37, 45), (26, 33)])
def test_authors_weights_give_the_reference_output(size):
    """The authors' sigma=25 weights through ``archsearch.weights`` (layout ``cscnet``) == the re-implementation
    with the raw file, at 40 x 40 and at sizes that are not multiples of 8."""
    state = _authors_state()
    model = _cscnet()
    x = torch.rand(1, 1, *size, generator=torch.Generator().manual_seed(0))
    noisy = x + 25 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(noisy)
        ref = reference_forward(noisy, state["apply_A.weight"], state["apply_B.weight"], state["apply_C.weight"],
                                state["soft_threshold.threshold"], 11, 8, 12)
    assert ours.shape == x.shape
    assert (ours - ref).abs().max().item() <= 1e-5


def test_cscnet_layout_is_detected_and_maps_every_key():
    path = shared_dir() / "pretrained" / "cscnet_sigma25.pt"
    if not path.exists():
        pytest.skip("CSCNet weights not found")
    mapped = state_dict_of(read_weights(path), path)
    assert set(mapped) == set(build(zoo_spec("cscnet")).state_dict())


def test_authors_init_scales_the_dictionary_by_the_power_method():
    """B = C = A at initialisation, ||A||_op ~ 1 (A / sqrt(lambda_max(A^T A))), thresholds 0.01."""
    from archsearch.blocks.csc import csc_power_norm

    torch.manual_seed(0)
    m = CSC(filters=16, kernel_size=5, stride=2, unfoldings=2).build()
    assert torch.equal(m.decoder, m.encoder) and torch.equal(m.encoder, m.output)
    assert torch.all(m.threshold == 0.01)
    lam = csc_power_norm(m.decoder.detach(), 2, iterations=100)
    assert lam.item() == pytest.approx(1.0, rel=0.05)


# ---------------------------------------------------------------------------------------------------------
# Set12 under the dncnn protocol
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow  # 136 s of CPU on one core (52 s user + 84 s system), 6.3 min wall on the shared 2 cores
@requires_shared
def test_cscnet_fidelity_set12():
    """30.256 dB: the authors' code under the dncnn protocol; measured here 30.256 dB (also with
    ``archsearch evaluate --zoo cscnet --weights ../shared/pretrained/cscnet_sigma25.pt --dataset Set12
    --protocol dncnn``)."""
    from archsearch.data import load_dataset
    from archsearch.evaluate import evaluate
    from archsearch.tasks import make_task

    torch.set_num_threads(1)  # the timing in docs/zoo.md is for one core
    t0 = time.perf_counter()
    result = evaluate(_cscnet(), make_task("denoise", sigma=25), load_dataset("Set12", data_root=shared_root()),
                      protocol="dncnn")
    print(f"cscnet Set12 {result.psnr:.4f} dB in {time.perf_counter() - t0:.1f} s")
    assert result.n_images == 12
    assert result.psnr == pytest.approx(30.256, abs=2e-3)


# ---------------------------------------------------------------------------------------------------------
# families
# ---------------------------------------------------------------------------------------------------------
def test_cscnet_family_defaults_are_the_zoo_model():
    assert get_family("cscnet")() .nodes == zoo_spec("cscnet").nodes
    assert zoo_spec("cscnet").global_residual == "none"  # CSCNet outputs the clean image


def test_stride_above_kernel_is_refused():
    from archsearch import SpecError

    with pytest.raises(SpecError) as info:
        get_family("cscnet")(kernel_size=5, stride=6)
    assert "stride" in str(info.value)


def test_hybrid_counts_equal_built_module():
    spec = get_family("csc_hybrid")(filters=8, unfoldings=2, kernel_size=5, stride=2, cnn_depth=3, cnn_width=8)
    module = build(spec)
    assert count(spec).params == sum(p.numel() for p in module.parameters())
    x = torch.rand(1, 1, 20, 18)
    assert fvcore_macs(module, x).total == macs(spec, 20, 18)
    assert module(x).shape == x.shape


# ---------------------------------------------------------------------------------------------------------
# Deep K-SVD (patch LISTA)
# ---------------------------------------------------------------------------------------------------------
def test_deep_ksvd_reference_configuration_size():
    """p = 8, 256 atoms, MLP 64-128-64-32-1: D 16,384 + MLP 18,689 + c 1 + w 64 (github meyerscetbon/Deep-K-SVD,
    DKSVD_train_model.py)."""
    spec = get_family("deep_ksvd")()
    assert count(spec).params == 16_384 + 18_689 + 1 + 64 == sum(p.numel() for p in build(spec).parameters())


def test_patch_lista_equals_a_direct_patch_loop():
    """The block == the Deep K-SVD recursion written per patch with explicit loops (one patch at a time)."""
    from archsearch.blocks import PatchLISTA

    block = PatchLISTA(patch_size=3, atoms=9, iterations=2, mlp_hidden=(5,))
    torch.manual_seed(1)
    m = block.build().eval()
    x = torch.rand(1, 1, 7, 6)
    with torch.no_grad():
        y = m(x)
        d, c, wt = m.dictionary, m.step, m.weight
        num, den = torch.zeros(7, 6), torch.zeros(7, 6)
        for i in range(7 - 2):
            for j in range(6 - 2):
                patch = (2 * x[0, 0, i:i + 3, j:j + 3] - 1).reshape(9)
                lam = m.threshold_mlp(patch) / c
                z = torch.sign(d.t() @ patch) * torch.relu((d.t() @ patch).abs() - lam)
                for _ in range(2):
                    u = z - d.t() @ (d @ z) / c + d.t() @ patch / c
                    z = torch.sign(u) * torch.relu(u.abs() - lam)
                est = (d @ z).clamp(-1, 1)
                num[i:i + 3, j:j + 3] += (wt * est).reshape(3, 3)
                den[i:i + 3, j:j + 3] += wt.reshape(3, 3)
        torch.testing.assert_close(y[0, 0], (num / den + 1) / 2, rtol=1e-5, atol=1e-5)


def test_overcomplete_dct_is_the_references():
    """init_dct of github meyerscetbon/Deep-K-SVD, Deep_KSVD.py: unit-norm columns, a constant DC atom, and
    the 2-D atoms are outer products of the 1-D ones."""
    from archsearch.blocks.deep_ksvd import overcomplete_dct

    d = overcomplete_dct(8, 256)
    assert d.shape == (64, 256)
    torch.testing.assert_close(d.norm(dim=0), torch.ones(256))
    torch.testing.assert_close(d[:, 0], torch.full((64,), 1 / 8))
    atom = d[:, 1 * 16 + 3].reshape(8, 8)  # 1-D atoms 1 and 3
    assert torch.linalg.matrix_rank(atom).item() == 1
