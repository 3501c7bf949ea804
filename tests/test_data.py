from __future__ import annotations

import numpy as np
import pytest
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
