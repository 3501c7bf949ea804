"""GPU paths (CUDA device selection, bfloat16 autocast, channels_last, latency with synchronisation).
Skipped cleanly on machines without CUDA, such as CI."""

from __future__ import annotations

import math

import pytest
import torch

from archsearch import build, get_family
from archsearch.data import embedded_split
from archsearch.evaluate import evaluate
from archsearch.latency import measure_latency
from archsearch.tasks import make_task
from archsearch.training import TrainConfig, train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _trained_psnr(device: str, *, steps: int, amp: bool = False, channels_last: bool = False) -> float:
    """Test PSNR of a small xNet trained from seed 0 on the embedded images (``steps`` 0: untrained)."""
    torch.manual_seed(0)
    model = build(get_family("xnet")(depth=3, width=8, xunit_kernel_size=3))
    task = make_task("denoise", sigma=25)
    if steps:
        config = TrainConfig(steps=steps, batch_size=4, patch_size=24, device=device, amp=amp,
                             channels_last=channels_last, val_crop=64, progress=False, seed=0)
        result = train(model, task, embedded_split("train")[:2], embedded_split("val"), config)
        assert result.status == "completed"
        assert next(model.parameters()).device.type == torch.device(device).type
    return evaluate(model, task, embedded_split("test")[:1], device=device).psnr


def test_training_on_cuda_matches_the_cpu_and_learns():
    untrained = _trained_psnr("cuda", steps=0)
    cpu = _trained_psnr("cpu", steps=40)
    gpu = _trained_psnr("cuda", steps=40)
    # the same seed, data and noise: fp32 CUDA and CPU differ by float rounding only
    assert abs(gpu - cpu) < 0.1, (gpu, cpu)
    assert gpu > untrained + 0.5, (gpu, untrained)  # 40 steps learn something: not a model that returns its input


def test_amp_and_channels_last_on_cuda_stay_close_to_fp32():
    fp32 = _trained_psnr("cuda", steps=40)
    fast = _trained_psnr("auto", steps=40, amp=True, channels_last=True)  # auto picks CUDA
    assert math.isfinite(fast) and abs(fast - fp32) < 0.5, (fast, fp32)


def test_latency_on_cuda():
    spec = get_family("convnet")(depth=3, width=8)
    result = measure_latency(spec, device="cuda", size=(64, 64), warmup=1, repeats=2)
    assert result["ms_per_mp"] > 0 and result["device"].startswith("cuda")
