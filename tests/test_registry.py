"""The one registry type, and a contract over every registry instance of the package: each refuses a duplicate
name, answers an unknown name with a did-you-mean error listing what is registered, and lists in registration
order. Also: the library never imports the test kits (nor fvcore) at runtime."""

from __future__ import annotations

import subprocess
import sys

import pytest

from archsearch.errors import RegistryError
from archsearch.families import FAMILIES
from archsearch.registry import Registry
from archsearch.spec import BLOCKS
from archsearch.tasks import TASKS
from archsearch.testing.macs import HANDLERS
from archsearch.weights import LAYOUTS
from archsearch.zoo import ZOO


def _all_registries() -> dict[str, Registry]:
    """Every module-level Registry of the package, found by importing each module: a new registry is covered
    by the contract without editing this test."""
    import importlib
    import pkgutil

    import archsearch

    found: dict[str, Registry] = {}
    for info in pkgutil.walk_packages(archsearch.__path__, "archsearch."):
        if info.name.endswith("__main__"):  # runs the CLI when imported
            continue
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if isinstance(value, Registry) and value not in found.values():
                found[f"{info.name}.{attr}"] = value
    return found


REGISTRIES = _all_registries()


def test_every_registry_is_found():
    from archsearch.claims.claim import CLAIM_KINDS

    assert {id(r) for r in (BLOCKS, FAMILIES, ZOO, TASKS, LAYOUTS, HANDLERS, CLAIM_KINDS)} <= \
        {id(r) for r in REGISTRIES.values()}


@pytest.mark.parametrize("name", REGISTRIES)
def test_registry_contract(name):
    reg = REGISTRIES[name]
    assert isinstance(reg, Registry)
    names = reg.names()
    assert names and len(set(names)) == len(names) == len(reg)
    assert list(reg) == names == list(reg.as_dict()) == [n for n, _ in reg.items()]
    assert reg.values() == [reg.as_dict()[n] for n in names]
    first = names[0]
    assert first in reg and reg.get(first) is reg[first] is reg.as_dict()[first]
    assert None not in reg and ["a list"] not in reg
    # a duplicate is refused and changes nothing
    with pytest.raises(RegistryError, match=f"{reg.what} {first!r} is already registered"):
        reg.add(first, reg.get(first))
    assert reg.names() == names
    # an unknown name: did-you-mean and the registered names
    typo = first + "x"
    with pytest.raises(RegistryError) as info:
        reg.get(typo)
    msg = str(info.value)
    assert msg.startswith(f"unknown {reg.what} {typo!r} (did you mean '")
    suggested = msg.split("did you mean '", 1)[1].split("'", 1)[0]
    assert suggested in reg and msg.endswith("registered: " + ", ".join(names))
    # a throw-away entry goes in and out
    reg.add("_test_entry", reg.get(first))
    try:
        assert reg.names() == names + ["_test_entry"]
    finally:
        reg.remove("_test_entry")
    assert reg.names() == names and "_test_entry" not in reg


def test_aliases_resolve_and_are_refused_twice():
    reg: Registry[int] = Registry("thing")
    reg.add("one", 1, aliases=("uno",))
    assert reg.canonical("uno") == "one" and reg["uno"] == 1 and "uno" in reg and reg.names() == ["one"]
    for name in ("uno", "one"):
        with pytest.raises(RegistryError, match=f"thing {name!r} is already registered"):
            reg.add(name, 2)
    with pytest.raises(RegistryError, match="non-empty name"):
        reg.add("", 3)
    reg.remove("one")
    assert "uno" not in reg and len(reg) == 0
    assert TASKS.canonical("denoising") == "denoise"


def test_library_does_not_import_the_test_kits():
    code = ("import sys, archsearch, archsearch.cli, archsearch.zoo, archsearch.weights, archsearch.report; "
            "bad = sorted(m for m in sys.modules if m.startswith(('archsearch.testing', 'fvcore'))); "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
