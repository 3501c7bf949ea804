"""Validity of a trained model: did it restore anything? The one rule, used by the trial that stores the verdict
and by every reader that counts it.

A trial is *degenerate* when its test PSNR is below its task's trivial baseline plus :data:`DEGENERATE_MARGIN_DB`
-- within 0.1 dB of the noisy input, of bicubic upsampling, of the JPEG input, or below it -- measured on the same
test images and noise draws and scored the same way (:func:`archsearch.evaluate.evaluate_baseline`). Why: in
issue 19, ``xunit_designs`` rl_cd at depths 6 and 9 scored exactly 15.185 dB on both seeds, the PSNR of the noisy
input itself (the network returned its input), and xSRCNN-f/-c sat below plain bicubic upsampling; their means and
zero-width intervals turned every comparison against them into an automatic win. A degenerate trial stays
COMPLETE in the ledger (it is a final result: resume does not re-run it, a search sampler still sees its value)
but readers never average it in (:func:`archsearch.study.results.summary_frame`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

#: A model must beat the trivial baseline by at least this much (dB) to count as having restored anything (issue
#: 19's margin: "within 0.1 dB of it, or below it"); every trained point of the studies gains whole dB over it.
DEGENERATE_MARGIN_DB = 0.1

OK = "ok"
DEGENERATE = "degenerate"
PARTLY_DEGENERATE = "partly degenerate"

Validity = Literal["ok", "degenerate"]


def classify(psnr: float, baseline_psnr: float) -> Validity:
    """``"degenerate"`` iff ``psnr < baseline_psnr + DEGENERATE_MARGIN_DB`` (exactly 0.1 dB above is ok), else
    ``"ok"``. A PSNR that is not a number (NaN) is degenerate: it never beats anything."""
    return OK if psnr >= baseline_psnr + DEGENERATE_MARGIN_DB else DEGENERATE


def combine(per_seed: Sequence[str]) -> str:
    """A trial's validity from its seeds': ``"ok"`` when every seed is ok, ``"degenerate"`` when every seed is,
    ``"partly degenerate"`` otherwise."""
    if all(v == OK for v in per_seed):
        return OK
    if all(v == DEGENERATE for v in per_seed):
        return DEGENERATE
    return PARTLY_DEGENERATE
