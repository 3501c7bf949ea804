"""An independent MAC count of a built module with fvcore, under archsearch's MAC conventions.

fvcore traces the module with ``torch.jit.trace`` and sums a handler per aten op. Its defaults count one fused
multiply-add as one "flop" for convolutions, linear layers, matmul/bmm and einsum -- i.e. MACs, which is what
archsearch counts. Where archsearch's documented convention differs from fvcore's default, or where fvcore has no
handler, a handler is registered below with the reason. Every op that appears in a trace must have a handler
(or be one of fvcore's own ignored data-movement ops): the helper returns ``unsupported_ops`` so that a test can
assert it is empty -- proof that nothing was silently skipped.

The module is analysed in eval mode (BatchNorm uses its running statistics, as at inference) with batch size 1.
fvcore is a test dependency (the ``test`` extra), imported inside the functions that use it. A new block whose
module runs an op without a handler adds one with ``HANDLERS.add(op, (handler, reason))``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from math import prod
from typing import Any

import torch
from torch import nn

from ..registry import Registry


def _fvcore():
    """fvcore's ``FlopCountAnalysis`` and ``get_shape`` (imported on first use)."""
    with warnings.catch_warnings():
        # fvcore (and iopath) apply torch.jit.script at import, which torch 2.13 reports as deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        from fvcore.nn import FlopCountAnalysis  # test extra: the MAC cross-check
        from fvcore.nn.jit_handles import get_shape  # test extra: the MAC cross-check
    return FlopCountAnalysis, get_shape


def _input_numel(inputs: list[Any], outputs: list[Any]) -> int:
    return prod(_fvcore()[1](inputs[0]))


def _batch_norm(inputs: list[Any], outputs: list[Any]) -> int:
    # archsearch: inference BatchNorm is the per-channel affine a*x + b -> 1 MAC per element. fvcore's default
    # counts 2 per element when the BN is affine (a scale and a shift). Only inference BN is meaningful here.
    training = inputs[5].toIValue()
    if training:
        raise AssertionError("fvcore MAC count must run with the module in eval mode (BatchNorm in training)")
    return _input_numel(inputs, outputs)


def _zero(inputs: list[Any], outputs: list[Any]) -> int:
    return 0


#: op -> (handler, reason). Counting handlers first, then the ops archsearch documents as costing 0 MACs.
HANDLERS: Registry[tuple[Any, str]] = Registry("MAC handler")
HANDLERS.add("aten::batch_norm", (_batch_norm, "inference BN = 1 MAC per element (fvcore default: 2 when affine)"))
HANDLERS.add("aten::avg_pool2d", (_input_numel, "average pooling = 1 MAC per input value (no fvcore default)"))
HANDLERS.add("aten::adaptive_avg_pool2d", (_input_numel, "average pooling = 1 MAC per input value "
                                                         "(= fvcore default)"))
HANDLERS.add("aten::mean", (_input_numel, "a mean = an average pooling: 1 MAC per input value "
                                          "(CSC shift averaging)"))
HANDLERS.add("aten::std", (_input_numel, "a variance = a mean of squares: 1 MAC per input value (LIDIA's patch "
                                       "variance; no fvcore default)"))
HANDLERS.add("aten::linalg_vector_norm", (_input_numel, "weight normalisation: a squared norm = 1 MAC per weight "
                                                        "(no fvcore default)"))
_ZERO_OPS = {
    # elementwise nonlinearities: archsearch counts no MACs for activations and gate functions
    "aten::relu": "elementwise (ReLU)",
    "aten::relu_": "elementwise (ReLU, in place)",
    "aten::prelu": "elementwise (PReLU: a compare and a product, not a MAC by convention)",
    "aten::_prelu_kernel": "elementwise (PReLU)",
    "aten::exp": "elementwise (xUnit Gaussian gate)",
    "aten::sigmoid": "elementwise (xUnit official gate, NSR sigmoid selection)",
    "aten::softmax": "elementwise normalisation (NSR selection)",
    "aten::neg": "elementwise (xUnit Gaussian gate exponent)",
    "aten::sign": "elementwise (Deep K-SVD soft threshold)",
    "aten::abs": "elementwise (Deep K-SVD soft threshold)",
    "aten::eye": "a constant (Deep K-SVD's identity in I - D^T D / c)",
    "aten::where": "selection of an index (CSC reflect padding)",
    "aten::index_select": "data movement (CSC reflect-padded shifted copies)",
    "aten::expand_as": "data movement (Deep K-SVD averaging weights)",
    # LIDIA's neighbour search: squared differences are elementwise (the sum over the patch is a conv, counted);
    # the top-k selection, the gathers and the index arithmetic are data movement
    "aten::pow": "elementwise (LIDIA squared differences)",
    "aten::topk": "selection of the k nearest neighbours (LIDIA; comparisons, not MACs)",
    "aten::gather": "data movement (indices of the selected neighbours)",
    "aten::remainder": "index arithmetic (LIDIA neighbour offsets, CSC reflect padding)",
    "aten::floor_divide": "index arithmetic (LIDIA neighbour offsets)",
    "aten::ones_like": "a constant (LIDIA overlap counts)",
    "aten::lerp": "elementwise (LIDIA mixing a x + (1 - a) f(x))",
    "aten::copy_": "data movement (LIDIA: phases of the second scale written into one map)",
    "aten::clone": "data movement",
    # elementwise arithmetic: products with a gate, residual additions, scalings, the weighted average of
    # MemNet's multi-supervised outputs, the softmax temperature
    "aten::mul": "elementwise product",
    "aten::mul_": "elementwise product (in place)",
    "aten::add": "elementwise sum (residual additions)",
    "aten::add_": "elementwise sum (in place)",
    "aten::sub": "elementwise difference (global residual)",
    "aten::rsub": "elementwise difference",
    "aten::div": "elementwise division (softmax temperature, weight-norm gain / norm)",
    # data movement
    "aten::cat": "concatenation (MemNet memories, concat block)",
    "aten::pad": "zero padding (NSR patches)",
    "aten::constant_pad_nd": "zero padding (NSR patches)",
    "aten::pixel_shuffle": "data movement (sub-pixel upsampler)",
    "aten::im2col": "data movement (unfold of NSR patches with halo)",
    "aten::col2im": "overlap-add of a transposed conv's columns (CSC synthesis; sums, as fvcore's conv_transpose)",
    "aten::unfold": "data movement",
    "aten::permute": "data movement",
    "aten::reshape": "data movement",
    "aten::view": "data movement",
    "aten::flatten": "data movement",
    "aten::repeat": "data movement (NSR bias per image)",
    "aten::select": "indexing",
    "aten::slice": "indexing (crop of the padded NSR output)",
    "aten::contiguous": "data movement",
    "aten::expand": "data movement",
    "aten::unsqueeze": "data movement",
    "aten::squeeze": "data movement",
}
for _op, _reason in _ZERO_OPS.items():
    HANDLERS.add(_op, (_zero, _reason))


@dataclass(frozen=True)
class FvcoreCount:
    total: int
    by_operator: Counter
    unsupported_ops: Counter


def fvcore_macs(module: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> FvcoreCount:
    """MACs of ``module(*inputs)`` as fvcore counts them with :data:`HANDLERS`. Inputs must have batch size 1.

    The module is put in eval mode (and back in its previous mode afterwards).
    """
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    if any(x.shape[0] != 1 for x in inputs):
        raise ValueError(f"batch size must be 1, got {[tuple(x.shape) for x in inputs]}")
    flop_count_analysis, _ = _fvcore()
    was_training = module.training
    module.eval()
    try:
        analysis = flop_count_analysis(module, inputs)
        analysis.set_op_handle(**{op: handler for op, (handler, _) in HANDLERS.items()})
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        with torch.no_grad(), warnings.catch_warnings():
            # fvcore's tracer touches torch.jit.script, which torch 2.13 marks deprecated: not our concern here
            warnings.simplefilter("ignore", DeprecationWarning)
            total = analysis.total()
        by_op = Counter(analysis.by_operator())
        unsupported = Counter(analysis.unsupported_ops())
    finally:
        module.train(was_training)
    return FvcoreCount(int(round(total)), by_op, unsupported)
