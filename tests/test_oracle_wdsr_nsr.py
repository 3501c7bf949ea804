"""Oracle: the ``edsr_nsr`` / ``wdsr_nsr`` families against an independent re-implementation of the authors'
``MODEL`` (github ychfan/pt_ir ``models/wdsr_nsr.py`` @ bb6933c813bd8a1a3fc50cdbd672c9e942b13a71, see
``tests/ref_pt_ir.py``): same weights through ``ref_pt_ir.model_to_reference``, max |difference| <= 1e-5 in train
and eval mode on tiny nets, equal parameter counts; and the full ``edsr_nsr_x2`` built once to count parameters
against the NSR README's 4,877,812 (github ychfan/nsr README, "EDSR+NSR x2"). The authors' checkpoints are on
Google Drive, not in shared/pretrained: the key mapping ``archsearch.blocks.nsr.pt_ir_nsr_state_dict`` is tested on a
state dict with the reference's keys.
"""

from __future__ import annotations

import pytest
import torch
from ref_pt_ir import RefModel, model_to_reference

from archsearch import build, count, zoo_spec
from archsearch.families import get_family

# (family, kwargs, reference args: units, width multiplier, k, d, n_blocks, scale, channels)
TINY = [
    ("edsr_nsr", dict(n_blocks=2, channels=16, upscale=2), (16, 1, 4, 16, 2, 2, 3)),
    ("edsr_nsr", dict(n_blocks=2, channels=16, upscale=3, sparsity_groups=2), (16, 1, 2, 16, 2, 3, 3)),
    ("wdsr_nsr", dict(n_blocks=3, channels=16, expansion=2, upscale=4, cardinality=8), (16, 2, 4, 8, 3, 4, 3)),
    ("wdsr_nsr", dict(n_blocks=1, channels=16, expansion=1, upscale=1, in_channels=1, out_channels=1),
     (16, 1, 4, 16, 1, 1, 1)),  # scale 1, equal channels: identity skip
]


def _pair(family, kwargs, ref_args):
    torch.manual_seed(0)
    ours = build(get_family(family)(**kwargs))
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    ref = RefModel(*ref_args)
    ref.load_state_dict(model_to_reference(ours.state_dict(), ref_args[4]), strict=True)
    return ours, ref


@pytest.mark.parametrize("family, kwargs, ref_args", TINY, ids=lambda v: str(v) if isinstance(v, str) else None)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_net_equals_reference(family, kwargs, ref_args, mode):
    ours, ref = _pair(family, kwargs, ref_args)
    n_ref = sum(p.numel() for p in ref.parameters())
    assert count(get_family(family)(**kwargs)).params == n_ref == sum(p.numel() for p in ours.parameters())
    ours.train(mode == "train")
    ref.train(mode == "train")
    x = torch.rand(2, ref_args[6], 10, 9, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(x) - ref(x)).abs().max().item()
    assert diff <= 1e-5, diff


def test_edsr_nsr_x2_has_the_readme_size():
    """Count only (no forward at full size): spec count == our module's numel == the re-implemented reference's
    numel == the NSR README's 4,877,812."""
    spec = zoo_spec("edsr_nsr_x2")
    ref_numel = sum(p.numel() for p in RefModel(64, 1, 4, 16, 16, 2).parameters())
    assert count(spec).params == sum(p.numel() for p in build(spec).parameters()) == ref_numel
    assert ref_numel == 4_877_812


@pytest.mark.parametrize("family, kwargs, ref_args", TINY[:3], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_reference_checkpoint_loads_through_the_key_mapping(family, kwargs, ref_args):
    """A state dict with the reference checkpoints' keys (weight_g / weight_v) loads strictly into our model
    through ``archsearch.blocks.nsr.pt_ir_nsr_state_dict`` and gives the reference's output."""
    from ref_pt_ir import as_checkpoint

    from archsearch.blocks.nsr import pt_ir_nsr_state_dict

    torch.manual_seed(3)
    ref = RefModel(*ref_args).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    ckpt = as_checkpoint(ref.state_dict())
    assert any(k.endswith("weight_g") for k in ckpt) and any(".body.2.mlp.0.weight" in k for k in ckpt)
    ours = build(get_family(family)(**kwargs)).eval()
    ours.load_state_dict(pt_ir_nsr_state_dict(ours, ckpt), strict=True)
    x = torch.rand(1, ref_args[6], 9, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max().item() <= 1e-5


def test_checkpoint_of_other_arguments_is_refused():
    from ref_pt_ir import as_checkpoint

    from archsearch.blocks.nsr import pt_ir_nsr_state_dict
    from archsearch.errors import ArchsearchError

    ckpt = as_checkpoint(RefModel(16, 1, 4, 16, 2, 2).state_dict())
    ours = build(get_family("edsr_nsr")(n_blocks=2, channels=32, upscale=2))
    with pytest.raises(ArchsearchError, match="does not fit"):
        pt_ir_nsr_state_dict(ours, ckpt)
