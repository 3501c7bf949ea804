"""Images for training and evaluation: the embedded default, folders of images, and the standard benchmark sets.

Every image is loaded once into a float32 tensor of shape (C, H, W) with values in [0, 1] at the file's true range
(8-bit value / 255, 16-bit grayscale value / 65535; see :func:`load_image`).

Three kinds of dataset, all named by one string (``resolve_dataset``):

* ``default`` (or ``default:train`` / ``default:val`` / ``default:test``) -- the **embedded default**: natural
  photographs that ship inside the scikit-image wheel, so a fresh machine needs no download. The split is
  fixed by file name (below); ``default`` alone means the split that fits the use (training reads ``train``,
  validation ``val``, ``archsearch evaluate`` ``test``).
* a **standard set** -- ``Train400``, ``BSD68``, ``Set12``, ``Set5``, ``Set14``, ``classic5``, ``LIVE1`` -- looked
  up as ``<data root>/<name>/``. The data root comes from ``data_root=`` (the CLI's ``--data-root``, a study's
  ``data_root`` field) or else the environment variable ``ARCHSEARCH_DATA_ROOT``; nothing is hard-coded.
  ``archsearch data fetch NAME`` downloads a set into a data root and checks its sha256 sums.
* any **folder** of PNG/JPG/BMP/TIFF images (a path; every image file directly inside it, sorted by name).

Embedded default (scikit-image's bundled files; everything else it bundles is excluded):

=================== ====== ========= ===== ===================================================================
file                split  size      mode  why
=================== ====== ========= ===== ===================================================================
chelsea.png         train  300x451   RGB   photograph of a cat: fur texture, smooth background
rocket.jpg          train  427x640   RGB   photograph (SpaceX launch): sky gradients, structures
motorcycle_left.png train  500x741   RGB   photograph, many edges and fine detail (the right view of the
                                           stereo pair is excluded: the same scene would leak across splits)
brick.png           train  512x512   gray  photograph of a brick wall: regular texture
grass.png           train  512x512   gray  photograph of grass: irregular fine texture
gravel.png          train  512x512   gray  photograph of gravel: stochastic texture
moon.png            train  512x512   gray  photograph of the lunar surface: low-contrast smooth regions
coffee.png          val    400x600   RGB   photograph of a coffee cup: smooth shading, specular highlights
camera.png          test   512x512   gray  the classic "cameraman" photograph
astronaut.png       test   512x512   RGB   photograph (Eileen Collins): skin, fabric, a flag
=================== ====== ========= ===== ===================================================================

Excluded: synthetic images (checkerboard/chessboard, colorwheel/color, logo, phantom, text, page, the blurred
``clock_motion``), binary images (horse, binary_blobs), microscopy and medical images (cell, ihc, retina,
microaneurysms, skin, kidney, ...), the Hubble deep field (astronomical, mostly black), coins (mostly flat
background) and anything that needs a download.

Colour handling, by the task's ``color``: ``gray`` converts RGB with Pillow's ``L`` (ITU-R 601-2 luma, rounded
to 8 bits), the grayscale denoising convention; ``y`` takes the Y of YCbCr with MATLAB's ``rgb2ycbcr``
(16 + 65.481 R + 128.553 G + 24.966 B, rounded to 8 bits), the convention of SRCNN/VDSR/MemNet for
single-channel super-resolution; ``rgb`` replicates a grayscale image to three channels.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from .errors import ArchsearchError, did_you_mean
from .text import shown

#: The environment variable naming the folder that holds the standard sets (``<root>/Set12/`` ...).
DATA_ROOT_ENV = "ARCHSEARCH_DATA_ROOT"

#: The benchmark sets of the restoration literature, looked up under the data root.
STANDARD_SETS = ("Train400", "BSD68", "Set12", "Set5", "Set14", "classic5", "LIVE1")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

EMBEDDED_SPLIT: dict[str, tuple[str, ...]] = {
    "train": ("chelsea.png", "rocket.jpg", "motorcycle_left.png", "brick.png", "grass.png", "gravel.png",
              "moon.png"),
    "val": ("coffee.png",),
    "test": ("camera.png", "astronaut.png"),
}
SPLITS = tuple(EMBEDDED_SPLIT)

Color = Literal["gray", "y", "rgb"]
COLORS = ("gray", "y", "rgb")


class DataError(ArchsearchError, ValueError):
    """A dataset that cannot be found or read (the message names the file, folder or setting)."""


@dataclass(frozen=True, eq=False)
class Image:
    """One image: ``pixels`` is float32 (C, H, W) in [0, 1]; ``name`` is the file stem (used in reports and to
    seed the test noise of this image)."""

    name: str
    pixels: torch.Tensor
    source: str = ""

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[-2]), int(self.pixels.shape[-1])


# --------------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------------
def rgb_to_y_uint8(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` Y of a uint8 (H, W, 3) image, as uint8 (ITU-R BT.601, studio range 16..235)."""
    x = rgb.astype(np.float64) / 255.0
    y = 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def _pixels(im, color: Color) -> np.ndarray:
    """(C, H, W) float32 in [0, 1] at the image's true value range (see :func:`load_image`)."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":  # 16-bit grayscale (PNG, TIFF); "I" holds 16-bit PNGs in old Pillows
        arr = np.asarray(im).astype(np.float64)
        top = float(arr.max(initial=0))
        if mode == "I" and (float(arr.min(initial=0)) < 0 or top > 65535):
            raise ValueError(f"32-bit integer pixels ({arr.min():.0f}..{top:.0f}): only 8- and 16-bit images are "
                             "supported")
        gray = (arr / 65535.0).astype(np.float32)[None]
        return np.repeat(gray, 3, axis=0) if color == "rgb" else gray
    if mode == "F":
        arr = np.asarray(im).astype(np.float32)
        if not np.isfinite(arr).all() or arr.min(initial=0) < 0 or arr.max(initial=0) > 1:
            raise ValueError("floating-point pixels outside [0, 1]: only 8- and 16-bit images, or float images in "
                             "[0, 1], are supported")
        return np.repeat(arr[None], 3, axis=0) if color == "rgb" else arr[None]
    # 8-bit modes (1, L, P, LA, PA, RGB, RGBA, CMYK, YCbCr, ...; Pillow reads 16-bit RGB(A) and LA PNGs as 8-bit
    # RGB(A)/LA, the high byte: the true range at 8-bit precision). Alpha is dropped, not composited.
    if color == "gray":
        arr = np.asarray(im.convert("L"))[None]
    elif color == "y":
        rgb = np.asarray(im.convert("RGB"))
        is_gray = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
        arr = (rgb[..., 0] if is_gray else rgb_to_y_uint8(rgb))[None]  # a gray image is its own Y
    else:
        arr = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
    return np.asarray(arr, dtype=np.float32) / np.float32(255.0)


def load_image(path: str | Path, color: Color = "gray") -> Image:
    """Read one image file into an :class:`Image`; unreadable or corrupt files raise :class:`DataError`.

    Values keep the file's true range: 8-bit images (gray, RGB(A), palette, LA, bilevel) are ``value / 255``,
    16-bit grayscale ``value / 65535``; 16-bit RGB(A) and LA PNGs are read by Pillow at 8-bit precision (it has no
    16-bit colour mode), still over the full [0, 1] range. Alpha channels are dropped.
    """
    if color not in COLORS:
        raise DataError(f"color must be one of {', '.join(COLORS)}, got {color!r}")
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Pillow only warns (DecompressionBombWarning) between 1x and 2x its pixel limit and decodes anyway,
            # which can exhaust memory: here the limit itself is the error (one line, no warning), checked
            # before decoding
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(path) as im:
                limit = PILImage.MAX_IMAGE_PIXELS
                if limit is not None and im.width * im.height > limit:
                    raise DataError(f"{shown(path)}: {im.width}x{im.height} image has {im.width * im.height:,} pixels, "
                                    f"above the limit of {limit:,} (Pillow's MAX_IMAGE_PIXELS, a guard against "
                                    "decompression bombs); downscale or tile the image")
                im.load()  # decode now: a truncated file fails here, not later
                arr = _pixels(im, color)
    except FileNotFoundError:
        raise DataError(f"{shown(path)}: no such image file") from None
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, PILImage.DecompressionBombError) as err:
        raise DataError(f"{shown(path)}: unreadable or corrupt image ({type(err).__name__}: {err})") from None
    pixels = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return Image(name=path.stem, pixels=pixels, source=str(path))


#: SSIM's Gaussian window (Wang et al. 2004): the smallest image (after the border crop) that can be scored.
SSIM_WINDOW = 11


def check_images(images: Sequence[Image], *, role: str, patch_size: int | None = None, factor: int = 1,
                 multiple: int | None = None, border: int = 0, crop: int | None = None, key: str = "") -> None:
    """Raise :class:`DataError` naming the first image too small for its use, before any work starts.

    ``role`` says what the images are for (``training``, ``validation``, ``test``); ``patch_size`` is the training
    patch (the target's size, a multiple of ``factor``, the low-resolution input's downscale); targets are cropped
    to a ``multiple`` of the SR scale first (default ``factor``); scored images
    (``patch_size`` None) must keep at least :data:`SSIM_WINDOW` pixels per side after the border crop of
    ``border`` pixels (the SR convention: ``border = scale``), after the centre ``crop`` when given, and give a
    low-resolution input of at least one pixel. ``key`` names the setting that could be changed.
    """
    if not images:
        raise DataError(f"empty {role} set: no images")
    setting = f" ({key})" if key else ""
    if patch_size is not None and patch_size % factor:
        raise DataError(f"{role} patch_size{setting} {patch_size} must be a multiple of the scale {factor} of a "
                        "low-resolution-input model")
    multiple = factor if multiple is None else multiple
    for im in images:
        h, w = im.size
        if multiple > 1:
            h, w = h - h % multiple, w - w % multiple  # SR targets are cropped to a multiple of the scale
        where = shown(im.source or im.name)
        if patch_size is not None:
            if h < patch_size or w < patch_size:
                raise DataError(f"{where}: {role} image is {h}x{w}, smaller than the {patch_size}x{patch_size} "
                                f"training patch{setting}; lower patch_size or drop the image")
            continue
        if crop is not None:
            h, w = min(h, crop), min(w, crop)
        need = SSIM_WINDOW + 2 * border
        if h < max(need, factor) or w < max(need, factor):
            cropped = f" after the {crop}x{crop} centre crop{setting}" if crop is not None else ""
            raise DataError(f"{where}: {role} image is {h}x{w}{cropped}, smaller than {need}x{need} (the "
                            f"{SSIM_WINDOW}x{SSIM_WINDOW} SSIM window" + (f" plus a {border}-pixel border on each "
                            "side" if border else "") + "); drop the image or use larger ones")


def list_image_files(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name; an empty folder raises :class:`DataError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{shown(folder)}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{shown(folder)}: empty dataset, no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    # An image's name is its stem: it labels the image in reports and seeds its test noise (evaluate.py), so two
    # files of one stem (a.png, a.jpg) would be one row twice with the same noise. Refused rather than renamed:
    # renaming would change the names, and so the noise, of every existing set.
    seen: dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise DataError(f"{shown(folder)}: {shown(seen[p.stem].name)} and {shown(p.name)} have the same name {shown(p.stem)!r} (an "
                            "image's name labels it in reports and seeds its test noise); rename or remove one")
        seen[p.stem] = p
    return files


# --------------------------------------------------------------------------------------------------------
# naming datasets
# --------------------------------------------------------------------------------------------------------
def expand_home(path: str | Path) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; an unknown user is a :class:`DataError` naming the
    path (``Path.expanduser`` raises a bare RuntimeError)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        user = str(path).split("/", 1)[0]
        raise DataError(f"{shown(path)}: cannot expand {user!r}: no such user (or no home folder)") from None


def data_root(explicit: str | Path | None = None) -> Path | None:
    """The data root: ``explicit`` if given, else ``$ARCHSEARCH_DATA_ROOT``, else ``None``."""
    if explicit:
        return expand_home(explicit)
    env = os.environ.get(DATA_ROOT_ENV)
    return expand_home(env) if env else None


_data_root = data_root  # resolve_dataset's parameter of the same name shadows the function


def _embedded_dir() -> Path:
    return Path(str(files("skimage.data")))


def embedded_files(split: str) -> list[Path]:
    """The files of one split of the embedded default (see the module docstring)."""
    if split not in EMBEDDED_SPLIT:
        raise DataError(f"embedded split must be one of {', '.join(SPLITS)}, got {split!r}")
    root = _embedded_dir()
    out = [root / name for name in EMBEDDED_SPLIT[split]]
    for p in out:
        if not p.is_file():
            raise DataError(f"{shown(p)}: embedded default image missing from the scikit-image install "
                            "(reinstall scikit-image>=0.21)")
    return out


def is_embedded(name: str) -> bool:
    return name in ("default", "embedded") or name.split(":", 1)[0] in ("default", "embedded")


def resolve_dataset(name: str | Path, data_root: str | Path | None = None, *, split: str = "test") -> list[Path]:
    """The image files of a dataset named by ``name`` (see the module docstring).

    ``split`` picks the embedded split when ``name`` is plain ``default``; ``default:<split>`` overrides it.
    ``data_root`` overrides ``$ARCHSEARCH_DATA_ROOT`` for the standard sets.
    """
    text = str(name)
    if is_embedded(text):
        _, _, explicit = text.partition(":")
        return embedded_files(explicit or split)
    if text in STANDARD_SETS:
        root = _data_root(data_root)
        if root is None:
            raise DataError(f"dataset {text!r} is a standard set read from the data root, and no data root is set: "
                            f"set the environment variable {DATA_ROOT_ENV} or pass --data-root (a study's "
                            f"data_root field) to the folder that holds {text}/")
        folder = root / text
        if not folder.is_dir():
            where = "--data-root/data_root" if data_root else DATA_ROOT_ENV
            raise DataError(f"dataset {text!r}: no folder {shown(folder)} (data root {shown(root)} from {where}); point the data "
                            f"root at the folder holding {text}/ or download it with "
                            f"`archsearch data fetch {text} --url URL --dest {root}`")
        return list_image_files(folder)
    path = expand_home(text)
    if path.is_dir():
        return list_image_files(path)
    if path.is_file():
        return [path]
    allowed = ["default", "default:train", "default:val", "default:test", *STANDARD_SETS]
    raise DataError(f"unknown dataset {text!r}{did_you_mean(text, allowed)}: expected one of {', '.join(allowed)} "
                    "or a folder of PNG/JPG/BMP images")


def load_dataset(name: str | Path, *, color: Color = "gray", data_root: str | Path | None = None,
                 split: str = "test") -> list[Image]:
    """Read every image of a dataset (:func:`resolve_dataset`) into memory."""
    return [load_image(p, color) for p in resolve_dataset(name, data_root, split=split)]


def embedded_split(split: str, color: Color = "gray") -> list[Image]:
    """The images of one split of the embedded default (``train``, ``val`` or ``test``)."""
    return [load_image(p, color) for p in embedded_files(split)]
