"""Reference zoo: the papers' networks as named family calls. Exact sizes are asserted in ``tests/test_zoo.py``.

Layouts (README, "Reference zoo", gives the same table):

* ``dncnn_s`` -- 17 convs, 64 ch; bias only on the first conv, BN (affine, eps 1e-4) after the 15 inner convs;
  output = input - body (residual learning). The official PyTorch layout: 556,096 parameters.
* ``xdncnn`` -- DnCNN with every ReLU replaced by a 9x9 xUnit (paper design) and 17 -> 9 convs, BN kept after the
  inner convs: 303,680 (paper: 303K).
* ``srcnn`` -- 9-5-5, 64/32 channels, biases: 57,281 (paper: 57K).
* ``xsrcnn_f`` -- SRCNN with 9x9 xUnits instead of ReLUs and the middle filter 5x5 -> 3x3: 32,673 (paper: 32K).
* ``xsrcnn_c`` -- SRCNN with 9x9 xUnits and 64 -> 42 channels in the first layer (the second layer's input):
  44,167 (paper: 44K).
* ``memnet_m6r6_ms`` -- the Caffe M6R6 deploy prototxt's graph (FENet BN-ReLU-conv, 6 memory blocks x 6
  recursions with shared convs and per-recursion BN, gates reading long-term memories first, convs with biases,
  one BN per output and a shared ReconNet conv): 695,497 = the prototxt's learnable blobs (676,992 conv
  weights; paper: 677K). ``memnet_m6r6`` -- its single-output form: 694,851.
* ``nsr_dn_*`` -- the NSR paper's denoising residual nets (Table 5): 16 blocks, 32 channels.
* ``edsr_nsr_x2/x3/x4`` -- "EDSR+NSR" of the NSR README, pt_ir ``models/wdsr_nsr.py`` with 64 units, width
  multiplier 1, 4 groups, 16 cardinals: 4,877,812 / 4,887,637 / 4,901,392 (the README's numbers).
* ``wdsr_nsr_x2`` -- the same code with its defaults but width multiplier 1 (Table 2's same-size k=4, 16 blocks):
  1,260,756.
* ``cscnet`` -- CSCNet sigma=25 (Simon & Elad 2019): one convolutional LISTA block, 3 x 175 x 11 x 11
  dictionaries + 175 thresholds = 63,700; outputs the clean image (no global residual).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .families import get_family
from .registry import Registry
from .spec import GraphSpec


@dataclass(frozen=True)
class ZooEntry:
    name: str
    family: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    paper: str = ""
    reported: str = ""  # the size the paper reports
    task: str = ""

    def spec(self) -> GraphSpec:
        return get_family(self.family)(name=self.name, **self.kwargs)


#: The zoo registry: model name -> :class:`ZooEntry` (:func:`register_zoo` adds to it).
ZOO: Registry[ZooEntry] = Registry("zoo model")


def register_zoo(entry: ZooEntry) -> ZooEntry:
    """Add a named model to the zoo; its family must be registered (the name once)."""
    get_family(entry.family)
    return ZOO.add(entry.name, entry)



register_zoo(ZooEntry("dncnn_s", "convnet", dict(depth=17, width=64, bn_eps=1e-4),
              "Zhang et al. TIP 2017 (DnCNN-S)", "555K (xUnit Table 1); 556,096 official PyTorch", "denoise"))
register_zoo(ZooEntry("xdncnn", "xnet", dict(depth=9, width=64, xunit_kernel_size=9, batch_norm=True),
              "Kligvasser et al. CVPR 2018, Table 1", "303K", "denoise"))
register_zoo(ZooEntry("convnet_fig4", "convnet", dict(depth=4, width=64),
              "xUnit paper Fig. 3/4 ConvNet (4 layers)", "-", "denoise"))
register_zoo(ZooEntry("xnet_fig4", "xnet", dict(depth=4, width=64, xunit_kernel_size=9),
              "xUnit paper Fig. 3/4 xNet (4 layers, 9x9 xUnits)", "-", "denoise"))
register_zoo(ZooEntry("srcnn", "srcnn", dict(n1=64, n2=32, f2=5),
              "Dong et al. TPAMI 2016 (9-5-5)", "57K", "sr"))
register_zoo(ZooEntry("xsrcnn_f", "srcnn", dict(n1=64, n2=32, f2=3, activation="xunit"),
              "Kligvasser et al. CVPR 2018, Table 3 (xSRCNNf)", "32K", "sr"))
register_zoo(ZooEntry("xsrcnn_c", "srcnn", dict(n1=42, n2=32, f2=5, activation="xunit"),
              "Kligvasser et al. CVPR 2018, Table 3 (xSRCNNc)", "44K", "sr"))
register_zoo(ZooEntry("memnet_m6r6", "memnet", dict(n_blocks=6, recursions=6),
              "Tai et al. ICCV 2017 (M6R6, 80 layers)", "677K", "denoise"))
register_zoo(ZooEntry("memnet_m6r6_ms", "memnet", dict(n_blocks=6, recursions=6, multi_supervised=True),
              "Tai et al. ICCV 2017, multi-supervised M6R6", "677K", "denoise"))
register_zoo(ZooEntry("memnet_m6r6_nl", "memnet", dict(n_blocks=6, recursions=6, long_term=False),
              "Tai et al. ICCV 2017, Table 1 MemNet_NL", "-", "denoise"))
register_zoo(ZooEntry("memnet_m6r6_ns", "memnet", dict(n_blocks=6, recursions=6, short_term=False),
              "Tai et al. ICCV 2017, Table 1 MemNet_NS", "-", "denoise"))
register_zoo(ZooEntry("nsr_dn_baseline", "resnet", dict(n_blocks=16, channels=32, expansion=2),
              "Fan et al. NeurIPS 2020, Table 5 baseline (x2 width)", "0.59M", "denoise"))
register_zoo(ZooEntry("nsr_dn_sparse_minus", "nsr_resnet", dict(n_blocks=16, channels=32, expansion=1, sparsity_groups=2),
              "Fan et al. NeurIPS 2020, Table 5 sparse- (k=2, x1 width)", "0.30M", "denoise"))
register_zoo(ZooEntry("nsr_dn_sparse_plus", "nsr_resnet", dict(n_blocks=16, channels=32, expansion=2, sparsity_groups=2),
              "Fan et al. NeurIPS 2020, Table 5 sparse+ (k=2, x2 width)", "0.60M", "denoise"))
register_zoo(ZooEntry("wdsr_nsr_x2", "wdsr_nsr", dict(n_blocks=16, channels=32, expansion=1, sparsity_groups=4, upscale=2),
              "Fan et al. NeurIPS 2020, Table 2 (WDSR 16 blocks, k=4, same size, x2); pt_ir models/wdsr_nsr.py "
              "with --width_multiplier 1", "1.2M", "sr"))
for _s, _n in ((2, "4,877,812"), (3, "4,887,637"), (4, "4,901,392")):
    register_zoo(ZooEntry(f"edsr_nsr_x{_s}", "edsr_nsr", dict(upscale=_s),
                  f"Fan et al. NeurIPS 2020; github ychfan/nsr README, EDSR+NSR x{_s} (pt_ir models/wdsr_nsr.py)",
                  _n, "sr"))
register_zoo(ZooEntry("cscnet", "cscnet", dict(filters=175, kernel_size=11, stride=8, unfoldings=12),
              "Simon & Elad NeurIPS 2019 (CSCNet sigma=25: 175 filters 11x11, stride 8, 12 unfoldings)", "63K",
              "denoise"))


def zoo_names() -> list[str]:
    return ZOO.names()


def zoo_entry(name: str) -> ZooEntry:
    return ZOO.get(name)


def zoo_spec(name: str) -> GraphSpec:
    """The spec of a zoo model."""
    return zoo_entry(name).spec()


def load_official_dncnn(module, path: str) -> None:
    """Load the official DnCNN-S weights (a plain state_dict, read without unpickling code) into a built
    ``dncnn_s``; every key must match (the key mapping is the ``dncnn`` layout of :mod:`archsearch.weights`)."""
    from .weights import load_weights

    load_weights(module, path)


def pt_ir_nsr_state_dict(module, checkpoint: dict) -> dict:
    """A state dict of the NSR authors' code (github ychfan/pt_ir ``models/wdsr_nsr.py`` ``MODEL.state_dict()``, as
    saved with ``torch.nn.utils.weight_norm``) in the key layout of a built ``wdsr_nsr`` / ``edsr_nsr`` spec of the
    same arguments (``edsr_nsr_x2`` for the NSR README's "EDSR+NSR x2" checkpoint).

    Key mapping (n = number of blocks): ``body.0.*`` -> ``blocks.head.*``; ``body.{n+1}.*`` -> ``blocks.tail.*``;
    ``skip.0.*`` -> ``blocks.skip.*``; ``body.{i}.body.{0|2}.`` (block i, its conv1 | conv2) ``weight_v`` ->
    ``blocks.nsr{i-1}.weight{1|2}``, ``weight_g`` -> ``gain{1|2}``, ``bias`` -> ``bias{1|2}``, ``mlp.0.*`` ->
    ``select{1|2}.*``. The tensors are reshaped only: our (k, d, out/d, ...) layout is the reference's
    (k * out, ...) rows in the same order. The image mean is not in a checkpoint (a constant of the spec)."""
    from .errors import ArchsearchError

    target = module.state_dict()
    n = sum(1 for key in target if key.startswith("blocks.nsr") and key.endswith(".weight1"))
    names = {"weight_v": "weight", "weight_g": "gain", "bias": "bias", "mlp.0.weight": "select{}.weight",
             "mlp.0.bias": "select{}.bias"}
    out = {}
    for key, tensor in checkpoint.items():
        parts = key.split(".")
        dst = None
        if parts[0] == "skip" and len(parts) == 3:
            dst = f"blocks.skip.{parts[2]}"
        elif parts[0] == "body" and parts[1].isdigit():
            i = int(parts[1])
            if i in (0, n + 1) and len(parts) == 3:
                dst = f"blocks.{'head' if i == 0 else 'tail'}.{parts[2]}"
            elif 1 <= i <= n and len(parts) >= 5 and parts[2] == "body" and parts[3] in ("0", "2"):
                j, rest = 1 if parts[3] == "0" else 2, ".".join(parts[4:])
                if rest in names:
                    name = names[rest]
                    dst = f"blocks.nsr{i - 1}." + (name.format(j) if "{}" in name else f"{name}{j}")
        if dst is None or dst not in target:
            raise ArchsearchError(f"pt_ir checkpoint key {key!r} has no place in this {n}-block model "
                                  f"(expected body.0, body.1..{n}.body.0/2, body.{n + 1}, skip.0)")
        if tensor.numel() != target[dst].numel():
            raise ArchsearchError(f"pt_ir checkpoint key {key!r}: {tuple(tensor.shape)} does not fit {dst} "
                                  f"{tuple(target[dst].shape)}: the spec's arguments differ from the checkpoint's")
        out[dst] = tensor.reshape(target[dst].shape)
    return out
