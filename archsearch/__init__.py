"""archsearch: architecture search and ablation for image-restoration networks at equal budget."""

from . import blocks  # noqa: F401  (registers the block library)
from .builder import build
from .counting import Counts, count, macs
from .errors import ArchsearchError, BudgetError, SpecError
from .families import get_family
from .spec import GraphSpec
from .zoo import zoo_names, zoo_spec

__version__ = "0.1.0"

__all__ = [
    "ArchsearchError", "BudgetError", "Counts", "GraphSpec", "SpecError", "build", "count", "get_family",
    "macs", "zoo_names", "zoo_spec",
]
