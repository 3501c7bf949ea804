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


def test_train_and_evaluate_on_cuda_with_amp_and_channels_last():
    spec = get_family("xnet")(depth=3, width=8, xunit_kernel_size=3)
    model = build(spec)
    task = make_task("denoise", sigma=25)
    config = TrainConfig(steps=3, batch_size=2, patch_size=24, device="auto", amp=True, channels_last=True,
                         val_crop=64, progress=False)
    result = train(model, task, embedded_split("train")[:2], embedded_split("val"), config)
    assert result.status == "completed"
    assert next(model.parameters()).is_cuda  # auto picked CUDA
    scores = evaluate(model, task, embedded_split("test")[:1], device="cuda")
    assert math.isfinite(scores.psnr)


def test_latency_on_cuda():
    spec = get_family("convnet")(depth=3, width=8)
    result = measure_latency(spec, device="cuda", size=(64, 64), warmup=1, repeats=2)
    assert result["ms_per_mp"] > 0 and result["device"].startswith("cuda")
