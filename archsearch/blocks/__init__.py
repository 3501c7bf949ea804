"""The block library: one file per family -- its blocks, design families, zoo models and authors' weight layouts,
each registered where it is defined. Adding a family = one file + one import line here.

The import order is the registration order, which is the order ``archsearch inspect --list`` lists the zoo in
(and ``families()`` the families): keep it when adding a line (append new families at the end).
"""

# isort: off
from .conv import BatchNorm, Conv, Identity, PReLU, ReLU
from .xunit import XUNIT_DESIGNS, XUnit
from .memnet import MemNetRecon, MemoryBlock
from .residual import ResidualBlock, Upsampler
from .nsr import NSRResBlock
from .csc import CSC
from .deep_ksvd import PatchLISTA
from .merge import Add, Concat
from .wdsr import MeanShift, PixelShuffle, WNConv
from .lidia import LIDIA
# isort: on

__all__ = [
    "Add", "BatchNorm", "CSC", "Concat", "Conv", "Identity", "LIDIA", "MeanShift", "MemNetRecon", "MemoryBlock",
    "NSRResBlock", "PReLU", "PatchLISTA", "PixelShuffle", "ReLU", "ResidualBlock", "Upsampler", "WNConv",
    "XUNIT_DESIGNS", "XUnit",
]
