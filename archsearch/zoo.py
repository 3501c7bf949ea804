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
* ``memnet_m6r6`` -- 6 memory blocks x 6 recursions, 64 ch, shared recursion weights, per-recursion BN:
  676,992 conv weights exactly as the original prototxt (paper: 677K), 693,632 parameters with the BNs.
* ``nsr_dn_*`` -- the NSR paper's denoising residual nets (Table 5): 16 blocks, 32 channels.
* ``cscnet`` -- CSCNet sigma=25 (Simon & Elad 2019): one convolutional LISTA block, 3 x 175 x 11 x 11
  dictionaries + 175 thresholds = 63,700; outputs the clean image (no global residual).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import RegistryError, did_you_mean
from .families import get_family
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


_ZOO: dict[str, ZooEntry] = {}


def _add(entry: ZooEntry) -> None:
    if entry.name in _ZOO:
        raise RegistryError(f"zoo name {entry.name!r} is already registered")
    _ZOO[entry.name] = entry


_add(ZooEntry("dncnn_s", "convnet", dict(depth=17, width=64, bn_eps=1e-4),
              "Zhang et al. TIP 2017 (DnCNN-S)", "555K (xUnit Table 1); 556,096 official PyTorch", "denoise"))
_add(ZooEntry("xdncnn", "xnet", dict(depth=9, width=64, xunit_kernel_size=9, batch_norm=True),
              "Kligvasser et al. CVPR 2018, Table 1", "303K", "denoise"))
_add(ZooEntry("convnet_fig4", "convnet", dict(depth=4, width=64),
              "xUnit paper Fig. 3/4 ConvNet (4 layers)", "-", "denoise"))
_add(ZooEntry("xnet_fig4", "xnet", dict(depth=4, width=64, xunit_kernel_size=9),
              "xUnit paper Fig. 3/4 xNet (4 layers, 9x9 xUnits)", "-", "denoise"))
_add(ZooEntry("srcnn", "srcnn", dict(n1=64, n2=32, f2=5),
              "Dong et al. TPAMI 2016 (9-5-5)", "57K", "sr"))
_add(ZooEntry("xsrcnn_f", "srcnn", dict(n1=64, n2=32, f2=3, activation="xunit"),
              "Kligvasser et al. CVPR 2018, Table 3 (xSRCNNf)", "32K", "sr"))
_add(ZooEntry("xsrcnn_c", "srcnn", dict(n1=42, n2=32, f2=5, activation="xunit"),
              "Kligvasser et al. CVPR 2018, Table 3 (xSRCNNc)", "44K", "sr"))
_add(ZooEntry("memnet_m6r6", "memnet", dict(n_blocks=6, recursions=6),
              "Tai et al. ICCV 2017 (M6R6, 80 layers)", "677K", "denoise"))
_add(ZooEntry("memnet_m6r6_ms", "memnet", dict(n_blocks=6, recursions=6, multi_supervised=True),
              "Tai et al. ICCV 2017, multi-supervised M6R6", "677K", "denoise"))
_add(ZooEntry("memnet_m6r6_nl", "memnet", dict(n_blocks=6, recursions=6, long_term=False),
              "Tai et al. ICCV 2017, Table 1 MemNet_NL", "-", "denoise"))
_add(ZooEntry("memnet_m6r6_ns", "memnet", dict(n_blocks=6, recursions=6, short_term=False),
              "Tai et al. ICCV 2017, Table 1 MemNet_NS", "-", "denoise"))
_add(ZooEntry("nsr_dn_baseline", "resnet", dict(n_blocks=16, channels=32, expansion=2),
              "Fan et al. NeurIPS 2020, Table 5 baseline (x2 width)", "0.59M", "denoise"))
_add(ZooEntry("nsr_dn_sparse_minus", "nsr_resnet", dict(n_blocks=16, channels=32, expansion=1, sparsity_groups=2),
              "Fan et al. NeurIPS 2020, Table 5 sparse- (k=2, x1 width)", "0.30M", "denoise"))
_add(ZooEntry("nsr_dn_sparse_plus", "nsr_resnet", dict(n_blocks=16, channels=32, expansion=2, sparsity_groups=2),
              "Fan et al. NeurIPS 2020, Table 5 sparse+ (k=2, x2 width)", "0.60M", "denoise"))
_add(ZooEntry("wdsr_nsr_x2", "nsr_resnet", dict(n_blocks=16, channels=32, expansion=4, sparsity_groups=4,
                                                 upscale=2, in_channels=3, out_channels=3),
              "Fan et al. NeurIPS 2020, Table 2 (WDSR 16 blocks, k=4, same size, x2, LR input)", "1.2M", "sr"))
_add(ZooEntry("cscnet", "cscnet", dict(filters=175, kernel_size=11, stride=8, unfoldings=12),
              "Simon & Elad NeurIPS 2019 (CSCNet sigma=25: 175 filters 11x11, stride 8, 12 unfoldings)", "63K",
              "denoise"))


def zoo_names() -> list[str]:
    return list(_ZOO)


def zoo_entry(name: str) -> ZooEntry:
    if name not in _ZOO:
        raise RegistryError(f"unknown zoo model {name!r}{did_you_mean(name, _ZOO)}; available: {', '.join(_ZOO)}")
    return _ZOO[name]


def zoo_spec(name: str) -> GraphSpec:
    """The spec of a zoo model."""
    return zoo_entry(name).spec()


def load_official_dncnn(module, path: str) -> None:
    """Load the official DnCNN-S weights (a plain state_dict, read without unpickling code) into a built
    ``dncnn_s``; every key must match (the key mapping is the ``dncnn`` layout of :mod:`archsearch.weights`)."""
    from .weights import load_weights

    load_weights(module, path)
