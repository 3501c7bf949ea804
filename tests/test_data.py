from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from restore_data import requires_shared, shared_root

from archsearch.data import (
    DATA_ROOT_ENV,
    EMBEDDED_SPLIT,
    STANDARD_SETS,
    DataError,
    data_root,
    embedded_split,
    load_dataset,
    load_image,
    resolve_dataset,
)


def test_embedded_split_is_fixed_disjoint_and_loads():
    names = [n for split in EMBEDDED_SPLIT.values() for n in split]
    assert len(names) == len(set(names)) == 10
    assert EMBEDDED_SPLIT["test"] == ("camera.png", "astronaut.png")
    for color, c in (("gray", 1), ("y", 1), ("rgb", 3)):
        (im,) = embedded_split("val", color)
        assert im.pixels.shape == (c, 400, 600) and 0 <= float(im.pixels.min()) <= float(im.pixels.max()) <= 1
    assert [im.name for im in embedded_split("train")][:2] == ["chelsea", "rocket"]
    test = embedded_split("test", "rgb")
    assert [im.name for im in test] == ["camera", "astronaut"] and test[0].size == (512, 512)
    assert resolve_dataset("default", split="train") == resolve_dataset("default:train")
    with pytest.raises(DataError, match="train, val, test"):
        resolve_dataset("default:holdout")


def test_folder_dataset_and_color_modes(tmp_path):
    rgb = (np.arange(8 * 8 * 3) % 256).astype(np.uint8).reshape(8, 8, 3)
    PILImage.fromarray(rgb).save(tmp_path / "b.png")
    PILImage.fromarray(rgb).save(tmp_path / "c.bmp")
    PILImage.fromarray(rgb[..., 0]).save(tmp_path / "a.jpg", quality=95)
    (tmp_path / "notes.txt").write_text("not an image")
    files = resolve_dataset(tmp_path)
    assert [p.name for p in files] == ["a.jpg", "b.png", "c.bmp"]
    gray = load_image(tmp_path / "b.png", "gray").pixels
    y = load_image(tmp_path / "b.png", "y").pixels
    assert gray.shape == y.shape == (1, 8, 8) and not np.allclose(gray, y)  # Y is studio-range, L is not
    assert load_image(tmp_path / "a.jpg", "rgb").pixels.shape == (3, 8, 8)  # gray replicated
    g = load_image(tmp_path / "a.jpg", "gray").pixels
    assert np.array_equal(load_image(tmp_path / "a.jpg", "y").pixels, g)  # a gray image is its own Y
    assert len(load_dataset(str(tmp_path), color="rgb")) == 3


def test_bad_images_and_empty_folders_name_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="broken.png: unreadable or corrupt"):
        load_image(bad)
    good = tmp_path / "trunc.png"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(good)
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match="trunc.png"):
        load_image(good)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty dataset"):
        resolve_dataset(empty)


def test_standard_sets_need_a_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    assert data_root() is None
    with pytest.raises(DataError, match=f"set the environment variable {DATA_ROOT_ENV} or pass --data-root"):
        resolve_dataset("Set12")
    with pytest.raises(DataError, match="no folder .*Set12.*archsearch data fetch Set12"):
        resolve_dataset("Set12", data_root=tmp_path)
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert data_root() == tmp_path and data_root("/elsewhere").as_posix() == "/elsewhere"
    with pytest.raises(DataError, match="did you mean 'Set12'"):
        resolve_dataset("set12x")


@requires_shared
def test_standard_sets_resolve_through_the_data_root(monkeypatch):
    root = shared_root()
    monkeypatch.setenv(DATA_ROOT_ENV, str(root))
    counts = {name: len(resolve_dataset(name)) for name in STANDARD_SETS}
    assert counts == {"Train400": 400, "BSD68": 68, "Set12": 12, "Set5": 5, "Set14": 14, "classic5": 5, "LIVE1": 29}
    monkeypatch.delenv(DATA_ROOT_ENV)
    set5 = load_dataset("Set5", color="y", data_root=root)
    assert [im.name for im in set5][0] == "baby_GT" and set5[0].pixels.shape[0] == 1


# ---------------------------------------------------------------------------------------------------------
# bit depths and modes: every PNG kind loads at its true value range
# ---------------------------------------------------------------------------------------------------------
def _png16(path, arr: np.ndarray, color_type: int) -> None:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour): rows with filter 0, big-endian samples."""
    import struct
    import zlib

    h = arr.shape[0]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", arr.shape[1], h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_16bit_gray_gradient_keeps_its_range(tmp_path):
    ramp = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)  # 0..65535, every value once
    PILImage.fromarray(ramp).save(tmp_path / "ramp16.png")
    for color, c in (("gray", 1), ("y", 1), ("rgb", 3)):
        px = load_image(tmp_path / "ramp16.png", color).pixels
        assert px.shape == (c, 256, 256) and px.dtype == torch.float32
        assert float(px.min()) == 0.0 and float(px.max()) == 1.0
        assert float((px == 1.0).float().mean()) < 1e-4  # clipped to 8 bits, 99% of the pixels were 1.0
        assert np.allclose(px[0].numpy(), ramp / 65535.0, atol=1e-6)  # 16-bit precision, no clipping
        assert float(px.mean()) == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("color_type, channels", [(0, 1), (2, 3), (4, 2), (6, 4)])  # gray, RGB, LA, RGBA
def test_16bit_pngs_of_every_colour_type_load_over_the_full_range(tmp_path, color_type, channels):
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    arr = np.stack([ramp] * channels, axis=-1) if channels > 1 else ramp
    if channels in (2, 4):
        arr[..., -1] = 65535  # opaque alpha
    _png16(tmp_path / "g.png", arr, color_type)
    px = load_image(tmp_path / "g.png", "gray").pixels[0].numpy()
    assert px.min() == 0.0 and px.max() == 1.0
    assert np.allclose(px, ramp / 65535.0, atol=1 / 255 + 1e-6)  # 8-bit precision at worst (16-bit colour)


def test_8bit_modes_palette_la_rgba_and_bilevel(tmp_path):
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expect = ramp / 255.0
    PILImage.fromarray(ramp).convert("P").save(tmp_path / "pal.png")
    PILImage.fromarray(ramp).convert("LA").save(tmp_path / "la.png")
    PILImage.fromarray(ramp).convert("RGBA").save(tmp_path / "rgba.png")
    PILImage.fromarray(np.where(ramp > 127, 255, 0).astype(np.uint8)).convert("1").save(tmp_path / "bw.png")
    for name in ("pal", "la", "rgba"):
        px = load_image(tmp_path / f"{name}.png", "gray").pixels[0].numpy()
        assert np.allclose(px, expect, atol=1e-6), name
        assert load_image(tmp_path / f"{name}.png", "rgb").pixels.shape == (3, 16, 16)
    bw = load_image(tmp_path / "bw.png").pixels
    assert set(np.unique(bw.numpy())) == {0.0, 1.0}


def test_check_images_names_the_file_too_small_for_patch_scale_or_ssim():
    from archsearch.data import Image, check_images

    big = Image("big", torch.zeros(1, 64, 64), "data/big.png")
    small = Image("small", torch.zeros(1, 10, 30), "data/small.png")
    check_images([big], role="training", patch_size=40)
    check_images([big], role="test", border=4, factor=4)
    with pytest.raises(DataError, match=r"data/small.png: training image is 10x30, smaller than the 40x40 training "
                                        r"patch \(training.patch_size\)"):
        check_images([big, small], role="training", patch_size=40, key="training.patch_size")
    with pytest.raises(DataError, match=r"data/small.png: test image is 10x30, smaller than 11x11 \(the 11x11 SSIM"):
        check_images([small], role="test")
    with pytest.raises(DataError, match=r"big.png: test image is 64x64, smaller than 75x75 .* 32-pixel border"):
        check_images([big], role="test", border=32)
    with pytest.raises(DataError, match=r"big.png: validation image is 8x8 after the 8x8 centre crop \(training.val_crop\)"):
        check_images([big], role="validation", crop=8, key="training.val_crop")
    with pytest.raises(DataError, match="must be a multiple of the scale 3"):
        check_images([big], role="training", patch_size=40, factor=3)
    with pytest.raises(DataError, match="empty test set"):
        check_images([], role="test")


def test_an_image_between_one_and_two_times_the_pixel_limit_is_an_error(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    PILImage.fromarray(np.zeros((12, 12), dtype=np.uint8)).save(path)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # 144 pixels: Pillow itself only warns (< 2x)
    with pytest.raises(DataError) as info:
        load_image(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: 12x12 image has 144 pixels, above the limit of 100") and "\n" not in msg


def test_two_images_of_one_stem_in_a_folder_are_refused_naming_both(tmp_path):
    for name in ("a.png", "a.jpg", "b.png"):
        PILImage.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(tmp_path / name)
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path}: a.jpg and a.png have the same name 'a'") and "\n" not in msg, msg
