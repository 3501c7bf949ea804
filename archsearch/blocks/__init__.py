"""The block library: one file per family. Adding a family = one file + one import line here."""

from .conv import BatchNorm, Conv, Identity, PReLU, ReLU
from .csc import CSC
from .deep_ksvd import PatchLISTA
from .memnet import MemNetRecon, MemoryBlock
from .merge import Add, Concat
from .nsr import NSRResBlock
from .residual import ResidualBlock, Upsampler
from .wdsr import MeanShift, PixelShuffle, WNConv
from .xunit import XUNIT_DESIGNS, XUnit

__all__ = [
    "Add", "BatchNorm", "CSC", "Concat", "Conv", "Identity", "MeanShift", "MemNetRecon", "MemoryBlock",
    "NSRResBlock", "PReLU", "PatchLISTA", "PixelShuffle", "ReLU", "ResidualBlock", "Upsampler", "WNConv",
    "XUNIT_DESIGNS", "XUnit",
]
