"""Oracle: the ``memnet`` family against an independent re-implementation of the MemNet Caffe model (github
tyshiwo/MemNet @ 10b18e927ea0e738609611adf50afac8046eacc2, M6R6 deploy and train prototxts; see
``tests/ref_memnet_caffe.py``): the same weights and BN statistics through ``ref_memnet_caffe.to_caffe``, max
|difference| <= 1e-5 in train mode (batch statistics) and eval mode (stored statistics), equal parameter counts;
and ``memnet_m6r6_ms`` has exactly the prototxt's learnable blob values. The authors published Caffe weights
(``.caffemodel``) but none are in shared/pretrained, so the weights here are random.
"""

from __future__ import annotations

import pytest
import torch
from ref_memnet_caffe import CaffeNet, learnable_blob_values, memnet_layers, to_caffe

from archsearch import build, count, zoo_spec
from archsearch.blocks import MemoryBlock
from archsearch.blocks.memnet import gate_weight_permutation
from archsearch.families import get_family

# (M, R, multi-supervised, long_term, short_term): tiny nets, 8 channels
TINY = [
    (2, 2, True, True, True),
    (3, 2, False, True, True),
    (2, 3, True, False, True),   # MemNet_NL
    (2, 3, False, True, False),  # MemNet_NS
]


def _randomize(module: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.3)


@pytest.mark.parametrize("case", TINY, ids=lambda c: "M{}R{}-ms{}-lt{}-st{}".format(*c))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_memnet_equals_caffe_model(case, mode):
    m, r, multi, lt, st = case
    spec = get_family("memnet")(n_blocks=m, recursions=r, channels=8, multi_supervised=multi, long_term=lt,
                                short_term=st)
    ours = build(spec)
    _randomize(ours)
    ref = CaffeNet(memnet_layers(m, r, 8, 1, multi, lt, st))
    ref.load_state_dict(to_caffe(ours.state_dict(), m, r, multi), strict=True)
    assert count(spec).params == sum(p.numel() for p in ref.parameters()) == sum(p.numel() for p in ours.parameters())
    ours.train(mode == "train")
    ref.train(mode == "train")
    x = torch.rand(2, 1, 12, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(x) - ref(x)).abs().max().item()
    assert diff <= 1e-5, diff


def test_m6r6_ms_has_the_prototxts_learnable_blobs():
    """memnet_m6r6_ms == the M6R6 prototxt's learnable blob values (Scale gammas/betas, conv weights/biases with
    the train prototxt's shared ``param`` names counted once, the 6 output weights); memnet_m6r6 (single output)
    == the same graph with one ReconNet. Each checked three ways: spec count, built module, Caffe layer list."""
    layers = memnet_layers(6, 6)
    ms = zoo_spec("memnet_m6r6_ms")
    assert count(ms).params == sum(p.numel() for p in build(ms).parameters()) == learnable_blob_values(layers)
    single = zoo_spec("memnet_m6r6")
    assert count(single).params == learnable_blob_values(memnet_layers(6, 6, multi=False))
    # the conv biases the issue counted in the Caffe model (one per output channel of every distinct conv blob)
    n_bias = sum(ly.channels for ly in {CaffeNet.blob_names(ly)[1]: ly for ly in layers
                                        if ly.type == "Convolution"}.values())
    conv_biases = sum(p.numel() for n, p in build(ms).named_parameters() if n.endswith("bias") and p.dim() == 1
                      and ".bn" not in n and "norms" not in n and "gate.0" not in n and "fenet_bn" not in n)
    assert conv_biases == n_bias


def test_gate_weight_permutation_carries_weights_between_orders():
    """A gate trained with the earlier short-first order gives the same output in Caffe's long-first order after
    permuting its BN and 1x1-conv input channels."""
    blk_old = MemoryBlock(4, recursions=2, n_memories=2, gate_order="short_first")
    blk_new = MemoryBlock(4, recursions=2, n_memories=2)
    old, new = blk_old.build(), blk_new.build()
    _randomize(old)
    sd = old.state_dict()
    perm = gate_weight_permutation(blk_old, "short_first", "long_first")
    for key in ("gate.0.weight", "gate.0.bias", "gate.0.running_mean", "gate.0.running_var"):
        sd[key] = sd[key][perm]
    sd["gate.2.weight"] = sd["gate.2.weight"][:, perm]
    new.load_state_dict(sd)
    xs = [torch.randn(1, 4, 8, 8) for _ in range(2)]
    old.eval()
    new.eval()
    with torch.no_grad():
        assert (old(*xs) - new(*xs)).abs().max().item() <= 1e-6
