"""Adding a block family touches nothing but its own code: a throw-away family defined here -- a block type, a
design family, a zoo entry and the block's examples, all registered in this file -- works with the builder, the
counters, the solver, the contract kit, spec files and the report labels; then everything is unregistered again.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import pytest
import torch
from torch import nn

from archsearch import build, count, macs, zoo_names, zoo_spec
from archsearch.blocks import Conv, ReLU
from archsearch.blocks._common import SameChannels  # as a block file uses it
from archsearch.errors import RegistryError
from archsearch.families import FAMILIES, argument_labels, get_family, register_family, variant_arguments
from archsearch.report.tables import compact_label
from archsearch.solver import Budget, solve
from archsearch.spec import BLOCKS, Block, BlockExample, GraphSpec, SpecBuilder, register_block
from archsearch.testing.blocks import block_cases, block_examples, check_block_contract
from archsearch.testing.macs import fvcore_macs
from archsearch.zoo import ZOO, ZooEntry, register_zoo

BLOCK, FAMILY, MODEL = "_test_depthwise", "_test_dwnet", "_test_dwnet_small"


@pytest.fixture
def family():
    """Register the throw-away family as a block file would, and take it out again afterwards."""

    @register_block
    @dataclass(frozen=True)
    class Depthwise(SameChannels, Block):
        """A depthwise k x k convolution without bias: c k^2 parameters, c k^2 MACs per pixel."""

        type = BLOCK
        paper = "a test block"

        channels: int
        kernel_size: int = 3

        @classmethod
        def examples(cls) -> list[BlockExample]:
            return [BlockExample("c8-k3", Depthwise(8)), BlockExample("c4-k5", Depthwise(4, 5), (9, 11))]

        def params_by_role(self) -> dict[str, int]:
            return {"conv": self.channels * self.kernel_size**2}

        def macs_per_pixel(self) -> Fraction:
            return Fraction(self.channels * self.kernel_size**2)

        def build(self) -> nn.Module:
            k = self.kernel_size
            return nn.Conv2d(self.channels, self.channels, k, padding=k // 2, groups=self.channels, bias=False)

        def export(self, ctx) -> str:
            k = self.kernel_size
            c = self.channels
            return f"nn.Conv2d({c}, {c}, {k}, padding={k // 2}, groups={c}, bias=False)"

    @register_family(FAMILY, depth=(1, 32), width=(1, 64), labels={"depth": "D"}, variants=("dw_kernel",))
    def dwnet(depth: int = 2, width: int = 8, dw_kernel: int = 3, in_channels: int = 1, out_channels: int = 1,
              name: str = "") -> GraphSpec:
        b = SpecBuilder()
        b.add(Conv(in_channels, width, 3))
        for _ in range(depth):
            b.add(Depthwise(width, dw_kernel))
            b.add(ReLU(width))
        b.add(Conv(width, out_channels, 3))
        return b.spec(name or f"dwnet_d{depth}_w{width}", in_channels, out_channels, global_residual="subtract")

    register_zoo(ZooEntry(MODEL, FAMILY, dict(depth=3, width=8), "a test model", "-", "denoise"))
    try:
        yield Depthwise
    finally:
        ZOO.remove(MODEL)
        FAMILIES.remove(FAMILY)
        BLOCKS.remove(BLOCK)
    assert BLOCK not in BLOCKS and FAMILY not in FAMILIES and MODEL not in ZOO
    assert "depth" not in argument_labels() and "dw_kernel" not in variant_arguments()


def _formula(depth: int, width: int, k: int = 3) -> tuple[int, int]:
    """Parameters and MACs per pixel by hand: head conv (with bias), depth x depthwise, tail conv (with bias)."""
    params = (9 * width + width) + depth * width * k * k + (9 * width + 1)
    return params, 9 * width + depth * width * k * k + 9 * width


def test_builder_counts_and_macs(family):
    spec = get_family(FAMILY)(depth=3, width=8)
    model = build(spec).eval()
    x = torch.randn(1, 1, 12, 10)
    assert model(x).shape == x.shape
    params, mpp = _formula(3, 8)
    c = count(spec)
    assert c.params == params == sum(p.numel() for p in model.parameters())
    assert c.macs_per_pixel == mpp
    assert macs(spec, 12, 10) == mpp * 120 == fvcore_macs(model, x).total


def test_solver_frees_a_knob_of_the_new_family(family):
    target = _formula(5, 8)[0]
    sol = solve(FAMILY, "depth", Budget("params", target), {"width": 8})
    assert sol.value == 5 and sol.achieved == target and sol.rel_error == 0


def test_contract_kit_collects_and_passes_its_examples(family):
    examples = block_examples()[BLOCK]
    assert [ex.id for ex in examples] == [f"{BLOCK}-c8-k3", f"{BLOCK}-c4-k5"]
    assert [c.id for c in block_cases() if c.values[0] == BLOCK] == [ex.id for ex in examples]
    for ex in examples:
        check_block_contract(ex)


def test_contract_kit_catches_a_wrong_count(family):
    """The kit can fail: an example whose block misreports its MACs is caught."""

    @dataclass(frozen=True)
    class Miscounted(family):
        def macs_per_pixel(self) -> Fraction:
            return super().macs_per_pixel() + 1

    with pytest.raises(AssertionError):
        check_block_contract(BlockExample("miscounted", Miscounted(8)))


def test_zoo_entry_and_spec_files(family, tmp_path):
    assert MODEL in zoo_names()
    spec = zoo_spec(MODEL)
    assert spec.name == MODEL and spec.nodes[1].block.type == BLOCK
    for suffix in (".yaml", ".json"):
        loaded = GraphSpec.from_file(spec.save(tmp_path / f"m{suffix}"))
        assert loaded == spec and loaded.hash == spec.hash


def test_report_labels_come_from_the_registration(family):
    assert argument_labels()["depth"] == "D"
    assert "dw_kernel" in variant_arguments()
    assert compact_label(f"{FAMILY} depth=3 width=8") == f"{FAMILY} D=3 width=8"
    assert compact_label("xnet xunit_kernel_size=9") == "xnet r=9"  # the built-in families' letters still hold


def test_labels_are_checked_at_registration(family):
    def fn(n_blocks: int = 1, depth: int = 1, width: int = 1, name: str = "") -> GraphSpec:
        raise AssertionError("never called")

    cases = [
        (dict(labels={"dpeth": "q"}), "not an argument"),  # a typo: did-you-mean
        (dict(variants=("nope",)), "not an argument"),
        (dict(labels={"n_blocks": "b"}), "labelled 'n' by another family"),  # one letter per argument
        (dict(labels={"width": "D"}), "already names argument 'depth'"),  # one argument per letter
        (dict(labels={"width": ""}), "non-empty string"),
        (dict(hidden=(1, 8)), "knob 'hidden' is not an argument"),
    ]
    for kwargs, message in cases:
        with pytest.raises(RegistryError, match=message):
            register_family("_test_refused", **kwargs)(fn)
        assert "_test_refused" not in FAMILIES
    with pytest.raises(RegistryError, match="did you mean 'depth'"):
        register_family("_test_refused", labels={"dpeth": "q"})(fn)


def test_duplicates_and_unknown_families_are_refused(family):
    with pytest.raises(RegistryError, match="already registered"):
        register_block(family)
    with pytest.raises(RegistryError, match="already registered"):
        register_family(FAMILY)(lambda name="": None)
    with pytest.raises(RegistryError, match=f"did you mean {FAMILY!r}"):
        register_zoo(ZooEntry("_test_other", FAMILY + "x"))
    assert "_test_other" not in ZOO
