"""The user attributes a trial stores in the ledger: the one list that the trial writes (:mod:`.trial` refuses a
name not listed here), the readers read (:mod:`.results`) and the testing kit's ledger-row factory
(:func:`archsearch.testing.ledger.add_trial`) builds rows from -- so renaming a stored attribute breaks the tests
that read it, not only the trial that writes it.

Names are part of the ledger format: ledgers written by earlier versions are read with these names, and
``optuna trials --study-name NAME --storage URL`` shows them.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ArchsearchError

#: name -> what it holds
TRIAL_ATTRS: dict[str, str] = {
    # queued with a sweep's grid point (runner.prepare)
    "point": "the grid point's stable key design|args|seed (resume never queues it twice)",
    "point_params": "the grid point's parameters (design, swept arguments, seed)",
    "label": "the design point as claims and reports name it: the design, then ' key=value' per swept argument",
    "sweep_value": "the sweep value of the grid point (None for a baseline)",
    # who ran it (trial.worker_identity)
    "host": "the machine that ran the trial",
    "pid": "the worker process that ran the trial",
    # the architecture (written before training, so a trial that fails still says what it was)
    "design": "the search-space design", "seed": "the training seed (the first, for multi-seed trials)",
    "spec_hash": "the architecture's spec hash", "spec_path": "the spec file in the study folder",
    "n_params": "trainable parameters (counted from the spec)", "macs_per_pixel": "MACs per output pixel",
    "activation_param_pct": "share of parameters in activations (xUnit paper Fig. 4), percent",
    "arguments": "the family arguments, the solved free knob included",
    # training, test, timing
    "steps": "training steps run", "steps_per_second": "training throughput",
    "train_settings": "threads, channels_last, amp, compile, deterministic as resolved for the run",
    "val_psnr": "final validation PSNR, dB", "val_gain_last_third": "validation PSNR gained over the last third "
    "of training, dB (large: still rising, under-trained)", "val_curve": "[step, validation PSNR] pairs",
    "psnr": "test PSNR, dB (mean over seeds)", "ssim": "test SSIM (mean over seeds)",
    "n_test_images": "test images", "checkpoint": "the weights file (single-seed trials)",
    "checkpoints": "every seed's weights file", "seeds": "the seeds a multi-seed trial trained",
    "psnr_per_seed": "test PSNR of each seed", "ssim_per_seed": "test SSIM of each seed",
    "val_psnr_per_seed": "final validation PSNR of each seed",
    "val_gain_last_third_per_seed": "last-third validation gain of each seed",
    # per-image results and the validity gate (archsearch.study.validity)
    "test_draws": "noise draws per test image (draw d seeded with d; 1 in ledgers written before draws)",
    "per_image_per_seed": "per seed (in the order of seeds), rows [image name, draw, psnr, ssim]",
    "test_protocol": "the test protocol when not 'default' (e.g. 'dncnn': the DnCNN authors' test script)",
    # published checkpoints (a design with `weights`: evaluated, never trained)
    "published_weights": "the published weights file the trial evaluated (absent: a trained trial)",
    "weights_sha256": "that file's sha256",
    "baseline": "the task's trivial baseline ('noisy input', 'bicubic x3', 'JPEG q10 input')",
    "baseline_psnr": "the baseline's test PSNR over the same images and draws, dB",
    "baseline_ssim": "the baseline's test SSIM over the same images and draws",
    "baseline_per_image": "the baseline's rows [image name, draw, psnr, ssim]",
    "validity_per_seed": "per seed: 'ok', or 'degenerate' (PSNR below the baseline's + 0.1 dB)",
    "validity": "'ok' (every seed ok), 'degenerate' (every seed degenerate) or 'partly degenerate'; "
    "a degenerate trial stays COMPLETE but is never averaged in",
    "wall_time_s": "the trial's wall time", "train_time_s": "training time", "eval_time_s": "test time",
    "overhead_s": "solve, build, spec and checkpoint writing",
    "latency_ms_per_mp": "inference latency, ms per output megapixel", "latency_device": "where it was measured",
    "latency_input": "the input size it was measured at",
    # how it ended
    "fail_reason": "why a trial failed or was pruned ('interrupted' for a killed worker's trial)",
    "duplicate_of": "the earlier trial that trained the same architecture (searches answer from it)",
    # paired-seed rung pruning (study.pruning)
    "rung_psnr": "validation PSNR per seed at each rung the trial reached: {step: {seed: dB}}",
    "pruned_by": "the rung decision that stopped the trial (step, leader trial, paired difference, bound, reason)",
    "pruned_at_step": "the rung step at which every seed of the trial stopped",
    "val_curve_per_seed": "[step, validation PSNR] pairs of every seed (pruned or lockstep trials: the seeds' curves)",
}


def check_attrs(names: Iterable[str]) -> None:
    """Refuse attribute names the ledger format does not list (a programming error, never user input)."""
    unknown = sorted(set(names) - set(TRIAL_ATTRS))
    if unknown:
        raise ArchsearchError(f"trial attribute(s) {', '.join(unknown)} are not in archsearch.study.record."
                              "TRIAL_ATTRS: add them there (the ledger format) before storing them")
