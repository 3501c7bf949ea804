"""Oracle: the ``lidia`` block with the authors' weights against an independent re-implementation of the
reference forward pass (github grishavak/LIDIA-denoiser @ 7ec25344dc268cdb6267b5ea68fedef3c13c7815,
``code/modules.py`` ``NonLocalDenoiser``; see ``tests/ref_lidia.py``), on the shared ``lidia_*.pt`` state dicts:
max |difference| <= 1e-5 in eval mode (the test-time padding) on gray, LIDIA-S and RGB at image sizes that are
multiples of nothing, and in train mode (``train_padding: reference``: the reference's padded-crop training
path, BN on batch statistics) on the centre. The weights load through the one loader (layout ``lidia``).

Skipped when the shared data root (``../shared`` next to the repository, or ``$ARCHSEARCH_DATA_ROOT``) is absent.
"""

from __future__ import annotations

import pytest
import torch
from ref_lidia import reference_forward, train_pad
from restore_data import shared_file

from archsearch.blocks import LIDIA
from archsearch.builder import build
from archsearch.families import get_family
from archsearch.weights import layouts, load_weights, read_weights, state_dict_of
from archsearch.zoo import zoo_spec


@pytest.fixture(autouse=True)
def one_thread():
    """The comparisons run on one thread: mirror-symmetric patches in the reflect padding have exactly equal
    distances, and which of them the top-k keeps depends on the bits of the distance sums; with two threads
    oneDNN's blocking (in the reference's conv and in ours) can change those bits, and the RGB model then picks
    other neighbours for a few pixels (measured: max |diff| 2.2e-3 on 17x26x3). Equality is claimed at one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _weights(name: str):
    path = shared_file("pretrained", name)
    if path is None:
        pytest.skip(f"the LIDIA authors' weights {name} not found next to the shared datasets")
    return path


def _model(zoo: str, path, **changes):
    """The zoo model (or its family with ``changes``) with the authors' weights, through the one loader."""
    fields = {k: v for k, v in zoo_spec(zoo).nodes[0].block.to_dict().items() if k != "type"}
    model = build(zoo_spec(zoo) if not changes else get_family("lidia")(**{**fields, **changes}))
    load_weights(model, path)
    return model


def _noisy(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(shape, generator=g) * 0.5 + 0.25
    return clean + 25 / 255 * torch.randn(shape, generator=g)


CASES = [  # (zoo model, weights file, input shape): sizes that are multiples of nothing, one batch of 2
    ("lidia", "lidia_sigma25_gray.pt", (1, 1, 37, 41)),
    ("lidia_s", "lidia_s_sigma25_gray.pt", (2, 1, 23, 19)),
    ("lidia_color", "lidia_sigma25_color.pt", (1, 3, 17, 26)),
    pytest.param("lidia", "lidia_sigma15_gray.pt", (1, 1, 29, 50), marks=pytest.mark.slow),
    pytest.param("lidia", "lidia_sigma50_gray.pt", (1, 1, 19, 26), marks=pytest.mark.slow),
    pytest.param("lidia_s", "lidia_s_sigma15_gray.pt", (1, 1, 17, 22), marks=pytest.mark.slow),
    pytest.param("lidia_s", "lidia_s_sigma50_gray.pt", (1, 1, 21, 18), marks=pytest.mark.slow),
]


@pytest.mark.parametrize("band", [1 << 21, 1500], ids=["one-band", "bands-of-rows"])
def test_search_equals_reference_bit_for_bit(monkeypatch, band):
    """The block's neighbour search (offsets last, running box sums, bands of rows) returns the reference's
    distances bit for bit and the same neighbours in the same order, ties included: the image is padded as the
    block pads it (reflect, then -1), so mirror-symmetric patches tie exactly; a small band splits the positions
    into many bands (and a band into the batch's two images). The traced path (conv2d, for fvcore and the
    exporters) too."""
    import torch.nn.functional as F
    from ref_lidia import _find_nn

    import archsearch.blocks.lidia as lidia

    monkeypatch.setattr(lidia, "LIDIA_SEARCH_BAND", band)
    g = torch.Generator().manual_seed(3)
    image = F.pad(lidia.lidia_reflect_pad(torch.rand(2, 1, 21, 17, generator=g) * 2 - 1, 4), [5] * 4, value=-1.0)
    want = _find_nn(image, 5, 5, 9)
    got = lidia.lidia_search(image, 5, 5, 9)
    conv = lidia._lidia_search_conv(image, 5, 5, 9)
    assert torch.equal(want[0], got[0].permute(0, 2, 3, 1)) and torch.equal(want[0], conv[0].permute(0, 2, 3, 1))
    for w, a, b in zip(want[1:], got[1:], conv[1:]):
        assert torch.equal(w, a.permute(0, 2, 3, 1)) and torch.equal(w, b.permute(0, 2, 3, 1))
    # the test means something: this image has exact ties inside the top 9 (mirror patches at equal distance)
    top = want[0]
    assert (top[..., 1:] == top[..., :-1]).logical_and(top[..., 1:] > 0).any()


@pytest.mark.parametrize("box_sums", ["conv", "additions"])
@pytest.mark.parametrize("levels", [0, 3], ids=["continuous", "three-levels"])
def test_search_fast_topk_equals_reference_bit_for_bit(monkeypatch, levels, box_sums):
    """LIDIA's own geometry (7 x 7 patches, 29 x 29 window, 14 neighbours): the +inf-padded top-k path
    (``_lidia_topk``) returns the reference's neighbours in its order, and the positions with a tie among their 15
    smallest distances, recomputed on the unpadded row, too. A three-level image makes ties common (its squared
    differences and their sums are exact); the test checks that both kinds of position occur in both. Both ways
    of summing the boxes (``_box_sums``): the depthwise conv, where this machine's conv gives the additions' bits
    (else skipped: the block falls back there), and the additions one by one (the fallback)."""
    import torch.nn.functional as F
    from ref_lidia import _find_nn

    import archsearch.blocks.lidia as lidia

    if box_sums == "conv":
        if not lidia._box_sums_by_conv(torch.float32, torch.device("cpu"), 960, 7):
            pytest.skip("this machine's depthwise conv adds in another order; the block uses the additions here")
        monkeypatch.setattr(lidia, "_box_sums_by_conv", lambda *a: True)
    else:
        monkeypatch.setattr(lidia, "_box_sums_by_conv", lambda *a: False)
    calls = []
    fast = lidia._lidia_topk
    monkeypatch.setattr(lidia, "_lidia_topk", lambda *a: calls.append(a[0].shape) or fast(*a))
    g = torch.Generator().manual_seed(5)
    image = torch.rand(2, 1, 23, 19, generator=g)
    image = (image * levels).floor() / levels if levels else image
    image = F.pad(lidia.lidia_reflect_pad(image * 2 - 1, 6), [14] * 4, value=-1.0)
    want = _find_nn(image, 7, 14, 14)
    got = lidia.lidia_search(image, 7, 14, 14)
    assert calls, "the padded top-k path was not taken"
    assert torch.equal(want[0], got[0].permute(0, 2, 3, 1))
    for w, a in zip(want[1:], got[1:]):
        assert torch.equal(w, a.permute(0, 2, 3, 1))
    full = _find_nn(image, 7, 14, 15)[0]  # the 15 smallest, sorted
    tied = ~(full[..., 1:] > full[..., :-1]).all(-1)  # (mirror patches of the reflect padding tie in both images)
    assert bool(tied.any()) and not bool(tied.all())


def test_threads_give_the_same_output():
    """On two threads the patch network's chunks run in parallel, one intra-op thread each (``_map_chunks``): the
    output is bit for bit the one-thread output, and the thread count is restored."""
    path = _weights("lidia_sigma25_gray.pt")
    model = _model("lidia", path).eval()
    x = _noisy((2, 1, 41, 47))
    with torch.inference_mode():
        one = model(x)
        torch.set_num_threads(2)
        two = model(x)
        assert torch.get_num_threads() == 2
    assert torch.equal(one, two)


@pytest.mark.parametrize("zoo, weights, shape", CASES, ids=lambda v: str(v).replace(" ", ""))
def test_eval_equals_reference(zoo, weights, shape):
    path = _weights(weights)
    model = _model(zoo, path).eval()
    x = _noisy(shape)
    with torch.no_grad():
        ours = model(x)
        ref = (reference_forward(read_weights(path), 2 * x - 1) + 1) / 2
    assert ours.shape == x.shape
    assert (ours - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize("zoo, weights, rgb", [("lidia", "lidia_sigma25_gray.pt", False),
                                               ("lidia_s", "lidia_s_sigma25_gray.pt", False)])
def test_train_mode_equals_reference_training_path(zoo, weights, rgb):
    """``train_padding: reference`` in train mode: the centre is the reference's ``train=True`` output (crop
    without synthetic padding, BN on the batch's statistics); the border is the input, without gradient."""
    path = _weights(weights)
    model = _model(zoo, path, train_padding="reference").train()
    x = _noisy((2, 1, 81, 79), seed=3).requires_grad_()
    t = train_pad(rgb)
    ours = model(x)
    with torch.no_grad():
        ref = (reference_forward(read_weights(path), 2 * x - 1, train=True) + 1) / 2
    assert ref.shape[-2:] == (81 - 2 * t, 79 - 2 * t)
    assert (ours[..., t:-t, t:-t] - ref).abs().max().item() <= 1e-5
    assert torch.allclose(ours[..., :t, :], x[..., :t, :], atol=1e-6)  # the input, through [-1, 1] and back
    ours[..., t:-t, t:-t].sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_layout_detects_the_authors_files_and_counts_match():
    """Every shared LIDIA file is recognised by the ``lidia`` layout; the trainable parameters of the authors'
    state dict (less BN statistics and the fixed blur kernel) equal the zoo model's exact count."""
    assert "lidia" in layouts()
    for zoo, name, expected in [("lidia", "lidia_sigma25_gray.pt", 61_589), ("lidia_s", "lidia_s_sigma25_gray.pt",
                                                                               40_226),
                                ("lidia_color", "lidia_sigma25_color.pt", 94_067)]:
        sd = read_weights(_weights(name))
        trainable = sum(v.numel() for k, v in sd.items()
                        if not k.endswith(("running_mean", "running_var", "num_batches_tracked", "bilinear_conv.weight")))
        assert trainable == expected
        assert zoo_spec(zoo).nodes[0].block.params() == expected
        assert set(state_dict_of(sd)) == set(build(zoo_spec(zoo)).state_dict())


@pytest.mark.parametrize("zoo, weights", [("lidia", f"lidia_sigma{s}_gray.pt") for s in (15, 50)]
                         + [("lidia_s", f"lidia_s_sigma{s}_gray.pt") for s in (15, 50)])
def test_other_noise_levels_load(zoo, weights):
    """The sigma = 15 / 50 files load strictly into the same zoo models (their outputs: the slow cases above)."""
    model = _model(zoo, _weights(weights)).eval()
    with torch.no_grad():
        assert torch.isfinite(model(_noisy((1, 1, 12, 9)))).all()


def test_layout_refuses_a_changed_blur_kernel():
    from archsearch.weights import WeightsError

    sd = dict(read_weights(_weights("lidia_sigma25_gray.pt")))
    sd["separable_fc_net.agg1.bilinear_conv.weight"] = torch.ones(1, 1, 3, 3)
    with pytest.raises(WeightsError, match="fixed"):
        state_dict_of(sd)


def test_block_defaults_are_lidia_gray():
    assert LIDIA().params() == 61_589 and LIDIA(small=True).params() == 40_226


@pytest.mark.slow
@pytest.mark.parametrize("zoo, sigma, expected", [("lidia", 25, 30.329), ("lidia_s", 25, 30.342),
                                                  ("lidia", 15, 32.824), ("lidia", 50, 27.118),
                                                  ("lidia_s", 15, 32.784), ("lidia_s", 50, 27.140)])
def test_set12_dncnn_protocol(zoo, sigma, expected):
    """Set12, the dncnn protocol (DnCNN's noise draw, raw float output), the authors' weights for each noise level:
    measured (docs/zoo.md). At sigma 25 the authors' code on the same noisy inputs gives 30.039 / 32.955 / 30.210
    dB on images 01 / 02 / 05 (ours the same)."""
    weights = f"{zoo}_sigma{sigma}_gray.pt"
    from restore_data import shared_root

    from archsearch.data import load_dataset
    from archsearch.evaluate import evaluate
    from archsearch.tasks import make_task

    if shared_root() is None:
        pytest.skip("shared benchmark sets not found")
    model = _model(zoo, _weights(weights)).eval()
    result = evaluate(model, make_task("denoise", sigma=sigma), load_dataset("Set12", data_root=shared_root()),
                      protocol="dncnn")
    assert result.n_images == 12
    assert result.psnr == pytest.approx(expected, abs=2e-3)


def test_box_sums_by_conv_match_the_additions_or_are_not_used(monkeypatch):
    """The depthwise-conv box sums either equal the sequential additions bit for bit on squares of LIDIA's shapes
    (7 x 7 and 5 x 5 boxes, 841 and 960 offsets, several band sizes, oneDNN on and off) or the once-per-process
    check turns them off (its answer is kept per oneDNN setting: without oneDNN the conv adds in another order);
    and the check itself can fail: a box sum in another order (reversed taps) differs from the additions."""
    import archsearch.blocks.lidia as lidia

    g = torch.Generator().manual_seed(11)
    for mkldnn in (True, False):  # without oneDNN PyTorch's own depthwise kernel adds in another order here
        monkeypatch.setattr(torch.backends.mkldnn, "enabled", mkldnn)
        for patch in (5, 7):
            for channels in (841, 960):
                if not lidia._box_sums_by_conv(torch.float32, torch.device("cpu"), channels, patch):
                    continue
                for hh, ww in ((patch + 2, patch + 30), (patch + 9, 70)):
                    squares = torch.rand(1, hh, ww, channels, generator=g).pow(2)
                    assert torch.equal(lidia._box_sums(squares, patch, True),
                                       lidia._box_sums(squares, patch, False))
    squares = torch.rand(1, 9, 40, 64, generator=g).pow(2)
    flipped = lidia._box_sums(squares.flip(1, 2), 3, False).flip(1, 2)  # the same boxes, taps added last-first
    assert not torch.equal(flipped, lidia._box_sums(squares, 3, False))
