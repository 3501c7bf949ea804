"""LIDIA on CPU: the ``lidia`` block against the reference algorithm (``tests/ref_lidia.py``, an independent
re-implementation of the authors' ``NonLocalDenoiser``: every window offset's distance map kept, one top-k,
the patch network on all patches at once), with the authors' sigma = 25 weights when the shared data root has
them (else the block's random initialisation, passed to both), on one noisy image.

Prints, per thread count: the seconds of each (best of ``--repeats``), their ratio and the max |difference| of
the outputs. ``--authors DIR`` also times the authors' own ``NonLocalDenoiser`` (``modules.py`` and ``utils.py``
of github grishavak/LIDIA-denoiser ``code/``, checked out outside this repository; run as their ``denoise``
script runs it: ``save_memory=True``, ``max_chunk=40000``). docs/zoo.md quotes its output on a 256 x 256 image::

    python benchmarks/bench_lidia.py --size 256 --threads 1 2 --repeats 2 [--authors ../LIDIA-denoiser/code]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's archsearch and the tests' reference

from ref_lidia import reference_forward  # noqa: E402 - the tests' reference, next to the repository's tests

from archsearch.allocator import keep_freed_memory  # noqa: E402
from archsearch.blocks.lidia import LIDIA_FIXED_KEY  # noqa: E402
from archsearch.builder import build  # noqa: E402
from archsearch.weights import load_weights, read_weights  # noqa: E402
from archsearch.zoo import zoo_spec  # noqa: E402


def _weights(model: str) -> Path | None:
    name = {"lidia": "lidia_sigma25_gray.pt", "lidia_s": "lidia_s_sigma25_gray.pt"}[model]
    for root in (ROOT.parent / "shared" / "pretrained",):
        if (root / name).is_file():
            return root / name
    return None


def _authors(folder: Path, model: str, state: dict, blur: torch.Tensor) -> torch.nn.Module:
    """The authors' ``NonLocalDenoiser`` from their own files, with the same weights (``blur``: the block's fixed
    kernel, which the random-initialisation state lacks and the authors' module loads as a weight)."""
    sys.path.insert(0, str(folder.resolve()))
    from modules import ArchitectureOptions, NonLocalDenoiser  # the authors' code, outside this repository
    from utils import calc_padding

    arch = ArchitectureOptions(rgb=False, small_network=model == "lidia_s")
    net = NonLocalDenoiser(calc_padding(arch)[0], arch)
    net.patch_denoise_net.load_state_dict({LIDIA_FIXED_KEY: blur, **state})
    return net.eval()


def _best(fn, repeats: int) -> tuple[float, str, torch.Tensor]:
    """The best wall time of ``repeats`` runs, that run's CPU seconds in user and system mode (system time is
    mostly the kernel zeroing freshly mapped pages: an algorithm that keeps every distance map touches gigabytes
    of new memory per image), and the output."""
    best, cpu, out = float("inf"), "", None
    for _ in range(repeats):
        r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        with torch.no_grad():
            out = fn()
        wall, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
        if wall < best:
            best, cpu = wall, f"(user {r1.ru_utime - r0.ru_utime:.1f} s, sys {r1.ru_stime - r0.ru_stime:.1f} s)"
    return best, cpu, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("lidia", "lidia_s"), default="lidia")
    ap.add_argument("--size", type=int, default=256, help="image side (default 256)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--authors", type=Path, default=None,
                    help="folder with the authors' modules.py and utils.py (not part of this repository)")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's malloc thresholds as they are (default: archsearch.allocator keeps freed "
                         "memory, as the CLI does; applies to every implementation timed)")
    args = ap.parse_args(argv)

    allocator = "kept" if not args.default_malloc and keep_freed_memory() else "glibc defaults"
    model = build(zoo_spec(args.model)).eval()
    path = _weights(args.model)
    if path is not None:
        load_weights(model, path)
        state = read_weights(path)
        source = f"authors' weights {path.name}"
    else:  # the block's random initialisation, in the authors' key names (the layout is a prefix)
        state = {k.removeprefix("blocks.lidia."): v for k, v in model.state_dict().items()}
        source = "random initialisation (no shared weights found)"
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(1, 1, args.size, args.size, generator=g) * 0.5 + 0.25
    noisy = clean + 25 / 255 * torch.randn(clean.shape, generator=g)
    authors = None if args.authors is None else _authors(args.authors, args.model, state,
                                                         model.get_buffer("blocks.lidia.blur"))
    print(f"{args.model}, {source}, one {args.size} x {args.size} gray image, sigma 25; torch {torch.__version__}; "
          f"freed memory: {allocator}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        t_ref, c_ref, ref = _best(lambda: (reference_forward(state, 2 * noisy - 1) + 1) / 2, args.repeats)
        t_ours, c_ours, ours = _best(lambda: model(noisy), args.repeats)
        diff = (ours - ref).abs().max().item()
        print(f"threads {threads}: reference {t_ref:.2f} s {c_ref}, lidia block {t_ours:.2f} s {c_ours}, "
              f"ratio {t_ref / t_ours:.1f}x, max |diff| {diff:.2e}")
        if authors is not None:
            t_auth, c_auth, theirs = _best(lambda: (authors(2 * noisy - 1, train=False, save_memory=True,
                                                            max_chunk=40000) + 1) / 2, args.repeats)
            print(f"threads {threads}: authors' code {t_auth:.2f} s {c_auth}, ratio {t_auth / t_ours:.1f}x, "
                  f"max |diff| {(ours - theirs).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
