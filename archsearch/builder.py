"""Build an ``nn.Module`` from a :class:`~archsearch.spec.GraphSpec`."""

from __future__ import annotations

import torch
from torch import nn

from .counting import check_size
from .spec import INPUT, GraphSpec


class GraphModule(nn.Module):
    """Runs the spec's nodes in order. Parameters live under ``blocks.<node name>``, so a spec whose nodes are
    named 0..n-1 has the state-dict keys of an ``nn.Sequential`` under the prefix ``blocks.``.

    Intermediate results are dropped as soon as their last reader has run.
    """

    def __init__(self, spec: GraphSpec):
        super().__init__()
        self.spec = spec
        self.blocks = nn.ModuleDict({node.name: node.block.build() for node in spec.nodes})
        last_use: dict[str, int] = {}
        for i, node in enumerate(spec.nodes):
            for src in node.inputs:
                last_use[src] = i
        last_use[spec.output] = len(spec.nodes)
        self._plan = [
            (node.name, tuple(node.inputs), tuple(s for s in set(node.inputs) if last_use[s] == i and s != INPUT))
            for i, node in enumerate(spec.nodes)
        ]
        self._sequential = all(
            node.inputs == ((spec.nodes[i - 1].name,) if i else (INPUT,)) for i, node in enumerate(spec.nodes)
        ) and spec.output == spec.nodes[-1].name
        self.global_residual = spec.global_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._sequential:  # the common chain: no bookkeeping at all
            y = x
            for module in self.blocks.values():
                y = module(y)
        else:
            values = {INPUT: x}
            for name, inputs, release in self._plan:
                values[name] = self.blocks[name](*(values[s] for s in inputs))
                for s in release:
                    del values[s]
            y = values[self.spec.output]
        if self.global_residual == "subtract":
            return x - y
        if self.global_residual == "add":
            return x + y
        return y


def build(spec: GraphSpec) -> GraphModule:
    """The ``nn.Module`` of a spec (weights freshly initialised by PyTorch's defaults); a spec too large to build
    raises :class:`~archsearch.errors.SpecError` before anything is allocated (:func:`~archsearch.counting.check_size`)."""
    check_size(spec)
    return GraphModule(spec)
