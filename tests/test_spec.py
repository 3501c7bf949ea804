"""GraphSpec: serialization round trips, the design hash, errors with exact paths, and the ``inspect`` CLI."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import subprocess
import sys
import typing

import pytest

from archsearch import GraphSpec, SpecError, zoo_names, zoo_spec
from archsearch.cli import main
from archsearch.spec import block_types
from archsearch.testing.blocks import block_examples, wrap_block

ZOO = zoo_names()
EXAMPLES = block_examples()


# ---------------------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZOO)
def test_yaml_file_round_trip(name, tmp_path):
    spec = zoo_spec(name)
    path = tmp_path / f"{name}.yaml"
    path.write_text(spec.to_yaml())
    back = GraphSpec.from_file(path)
    assert back == spec
    assert back.hash == spec.hash
    assert back.to_dict() == spec.to_dict()


@pytest.mark.parametrize("name", ZOO)
def test_json_round_trip(name, tmp_path):
    spec = zoo_spec(name)
    back = GraphSpec.from_dict(json.loads(spec.to_json()))
    assert back == spec and back.hash == spec.hash
    saved = GraphSpec.from_file(spec.save(tmp_path / f"{name}.json"))
    assert saved == spec and saved.hash == spec.hash


@pytest.mark.parametrize("type_name", sorted(EXAMPLES))
def test_every_block_example_round_trips_through_yaml(type_name, tmp_path):
    for ex in EXAMPLES[type_name]:
        spec = wrap_block(ex.block)
        back = GraphSpec.from_file(spec.save(tmp_path / "s.yaml"))
        assert back == spec and back.hash == spec.hash, ex.id


# ---------------------------------------------------------------------------------------------------------
# hash
# ---------------------------------------------------------------------------------------------------------
def test_hash_is_16_hex_digits_and_ignores_name_and_description():
    spec = zoo_spec("xdncnn")
    assert re.fullmatch(r"[0-9a-f]{16}", spec.hash)
    assert zoo_spec("xsrcnn_f").hash != spec.hash  # a different design, a different hash
    renamed = dataclasses.replace(spec, name="other", description="same design, other words")
    assert renamed.hash == spec.hash


def test_hash_is_stable_across_processes():
    code = "import archsearch; print(archsearch.zoo_spec('xdncnn').hash, archsearch.zoo_spec('memnet_m6r6').hash)"
    outs = set()
    for seed in ("0", "12345"):  # different str-hash randomization in each process
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.add(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                check=True).stdout.strip())
    assert outs == {f"{zoo_spec('xdncnn').hash} {zoo_spec('memnet_m6r6').hash}"}


def _alternatives(tp: typing.Any, value: typing.Any) -> list[typing.Any]:
    """Other values of a field's type to try (some may be invalid for the block: those are skipped)."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return [a for a in typing.get_args(tp) if a != value]
    if tp is bool:
        return [not value]
    if tp is int:
        return [value + 1, value + 2, value * 2, value - 1]
    if tp is float:
        return [value * 2, value / 2, value + 0.5]
    if origin is tuple:
        return [value + value[-1:], value[:-1] + (value[-1] + 4,)]
    raise TypeError(f"no alternatives for {tp}")


def test_hash_changes_when_any_block_field_changes():
    """For every field of every block example: every valid change of the field gives a different hash."""
    untested = []
    for examples in EXAMPLES.values():
        for ex in examples:
            base = wrap_block(ex.block)
            hints = typing.get_type_hints(type(ex.block))
            for f in dataclasses.fields(ex.block):
                changed = 0
                value = getattr(ex.block, f.name)
                for alt in [a for a in _alternatives(hints[f.name], value) if a != value]:
                    try:
                        other = wrap_block(ex.block.replace(**{f.name: alt}))
                    except SpecError:
                        continue
                    assert other.hash != base.hash, f"{ex.id}: {f.name} {value!r} -> {alt!r}"
                    changed += 1
                if not changed:
                    untested.append(f"{ex.id}.{f.name}")
    # every field of every registered type was changed validly in at least one example
    fields_changed = {(ex.block.type, f.name) for examples in EXAMPLES.values() for ex in examples
                      for f in dataclasses.fields(ex.block) if f"{ex.id}.{f.name}" not in untested}
    all_fields = {(t, f.name) for t, cls in block_types().items() for f in dataclasses.fields(cls)}
    assert all_fields <= fields_changed, f"fields never changed: {sorted(all_fields - fields_changed)}"


def test_hash_changes_with_graph_fields():
    spec = zoo_spec("nsr_dn_baseline")
    d = spec.to_dict()
    variants = []
    v = copy.deepcopy(d)
    v["global_residual"] = "add"
    variants.append(v)
    v = copy.deepcopy(d)
    v["output"] = d["blocks"][-1]["name"]  # the default: same design
    same = GraphSpec.from_dict(v)
    assert same.hash == spec.hash
    v = copy.deepcopy(d)
    v["blocks"][2]["inputs"] = [d["blocks"][0]["name"]]  # skip a residual block
    variants.append(v)
    v = copy.deepcopy(d)
    v["blocks"][3]["branch_scale"] = 0.1
    variants.append(v)
    hashes = {GraphSpec.from_dict(v).hash for v in variants}
    assert len(hashes) == len(variants) and spec.hash not in hashes


def test_hashes_of_the_zoo_are_distinct():
    hashes = [zoo_spec(n).hash for n in ZOO]
    assert len(set(hashes)) == len(hashes)


# ---------------------------------------------------------------------------------------------------------
# errors: rule, exact path, values
# ---------------------------------------------------------------------------------------------------------
BASE = {
    "name": "t",
    "in_channels": 1,
    "out_channels": 1,
    "blocks": [
        {"type": "conv", "in_channels": 1, "out_channels": 8},
        {"type": "relu", "channels": 8},
        {"type": "conv", "in_channels": 8, "out_channels": 8, "groups": 2},
        {"type": "conv", "in_channels": 8, "out_channels": 1, "kernel_size": 3},
    ],
}


def _error(mutate) -> SpecError:
    d = copy.deepcopy(BASE)
    mutate(d)
    with pytest.raises(SpecError) as info:
        GraphSpec.from_dict(d)
    return info.value


def test_base_spec_is_valid():
    assert GraphSpec.from_dict(BASE).out_channels == 1


def test_unknown_block_type_did_you_mean_and_allowed():
    err = _error(lambda d: d["blocks"][1].update(type="xunt"))
    assert err.path == "blocks[1].type"
    msg = str(err)
    assert "'xunt'" in msg and "did you mean 'xunit'" in msg
    assert all(t in msg for t in block_types())


def test_unknown_field():
    err = _error(lambda d: d["blocks"][2].update(kernal_size=3))
    assert err.path == "blocks[2].kernal_size"
    assert "did you mean 'kernel_size'" in str(err)
    assert "allowed: in_channels, out_channels, kernel_size, bias, groups" in str(err)


def test_unknown_top_level_key():
    err = _error(lambda d: d.update(descripton="x"))
    assert err.path == "descripton" and "did you mean 'description'" in str(err)


def test_missing_required_field():
    err = _error(lambda d: d["blocks"][2].pop("out_channels"))
    assert err.path == "blocks[2].out_channels" and "required" in str(err)
    err = _error(lambda d: d.pop("blocks"))
    assert err.path == "blocks" and "required" in str(err)


@pytest.mark.parametrize("field, value, rule", [
    ("kernel_size", "3", "must be an integer, got '3'"),
    ("bias", 1, "must be true or false, got 1"),
    ("groups", 2.0, "must be an integer, got 2.0"),
    ("kernel_size", True, "must be an integer, got True"),
])
def test_ill_typed_field(field, value, rule):
    err = _error(lambda d: d["blocks"][2].update({field: value}))
    assert err.path == f"blocks[2].{field}"
    assert str(err) == f"blocks[2].{field}: {rule}"


def test_literal_field_lists_allowed_values():
    err = _error(lambda d: d["blocks"].__setitem__(1, {"type": "xunit", "channels": 8, "gate": "relu"}))
    assert err.path == "blocks[1].gate"
    assert "'gaussian', 'sigmoid', 'none'" in str(err) and "'relu'" in str(err)


@pytest.mark.parametrize("key, value", [("in_channels", "1"), ("description", 5), ("name", 3),
                                        ("global_residual", "sub"), ("output", 3)])
def test_ill_typed_top_level_field(key, value):
    err = _error(lambda d: d.update({key: value}))
    assert err.path == key, str(err)
    assert repr(value) in str(err)


def test_channels_not_divisible_by_groups():
    err = _error(lambda d: d["blocks"][2].update(groups=3))
    assert str(err) == "blocks[2].in_channels: must be divisible by groups 3, got 8"


def test_channels_not_divisible_by_cardinality():
    blk = {"type": "nsr_residual", "channels": 8, "hidden_channels": 8, "sparsity_groups": 2, "cardinality": 3}
    err = _error(lambda d: d["blocks"].__setitem__(1, blk))
    assert err.path == "blocks[1].cardinality"
    assert "group width 4" in str(err) and "got 3" in str(err)


def test_even_kernel_size():
    err = _error(lambda d: d["blocks"][3].update(kernel_size=4))
    assert err.path == "blocks[3].kernel_size"
    assert "must be odd" in str(err) and "got 4" in str(err) and "1, 3, 5" in str(err)


def test_channel_mismatch_between_blocks():
    err = _error(lambda d: d["blocks"][3].update(in_channels=16))
    assert err.path == "blocks[3].inputs[0]"
    assert "expects 16 channels" in str(err) and "gives 8" in str(err)


def test_output_channels_mismatch():
    err = _error(lambda d: d.update(out_channels=3))
    assert err.path == "out_channels" and "3" in str(err) and "1 channels" in str(err)


@pytest.mark.parametrize("target", ["2", "3", "nope"])
def test_input_naming_a_later_or_unknown_block(target):
    err = _error(lambda d: d["blocks"][1].update(inputs=[target]))
    assert err.path == "blocks[1].inputs[0]"
    assert "earlier block" in str(err) and repr(target) in str(err)


def test_wrong_number_of_inputs():
    blk = {"type": "add", "channels": 8, "n_inputs": 2, "inputs": ["0"]}
    err = _error(lambda d: d["blocks"].__setitem__(1, blk))
    assert err.path == "blocks[1].inputs" and "takes 2 input(s), got 1" in str(err)


def test_global_residual_needs_matching_shapes():
    err = _error(lambda d: (d.update(out_channels=8, global_residual="add"), d["blocks"].pop()))
    assert err.path == "global_residual"


def test_error_names_the_file(tmp_path):
    d = copy.deepcopy(BASE)
    d["blocks"][3]["kernel_size"] = 4
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(SpecError) as info:
        GraphSpec.from_file(path)
    assert str(info.value).startswith(f"{path}: blocks[3].kernel_size: must be odd")


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("in_channels: 1\nblocks: [1, 2\n")
    with pytest.raises(SpecError) as info:
        GraphSpec.from_file(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: malformed YAML") and "\n" not in msg


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{")
    with pytest.raises(SpecError) as info:
        GraphSpec.from_file(path)
    assert str(info.value).startswith(f"{path}: malformed JSON")


def test_non_utf8_file_is_a_spec_error(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(SpecError) as info:
        GraphSpec.from_file(path)
    assert str(path) in str(info.value)


def test_spec_is_immutable():
    spec = zoo_spec("srcnn")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.nodes[0].block.kernel_size = 3  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------
def _single_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_cli_bad_spec_file(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    text = GraphSpec.from_dict(BASE).to_yaml()
    path.write_text(text.replace("out_channels: 1, kernel_size: 3", "out_channels: 1, kernel_size: 4"))
    assert main(["inspect", str(path)]) == 2
    line = _single_error_line(capsys)
    assert str(path) in line and "blocks[" in line and "kernel_size" in line and "got 4" in line


@pytest.mark.parametrize("content", [b"in_channels: [1\n", b"\xff\xfe\x00 not text", b"", b"- a\n- b\n"])
def test_cli_unreadable_spec_files(tmp_path, capsys, content):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert main(["inspect", str(path)]) == 2
    assert str(path) in _single_error_line(capsys)


def test_cli_missing_file(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in _single_error_line(capsys)


def test_cli_unknown_zoo_name_lists_the_zoo(capsys):
    assert main(["inspect", "dncnn_x"]) == 2
    line = _single_error_line(capsys)
    assert "'dncnn_x'" in line and all(n in line for n in ZOO)


def test_cli_json_for_every_zoo_model(capsys):
    assert main(["inspect", "--format", "json", *ZOO]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["name"] for r in rows] == ZOO
    from archsearch import count

    for row in rows:
        assert {"name", "params", "macs_per_pixel", "activation_param_pct", "params_by_role"} <= set(row)
        c = count(zoo_spec(row["name"]))
        assert row["params"] == c.params and row["params_by_role"] == dict(c.params_by_role)
        assert row["macs_per_pixel"] == c.macs_per_pixel


def test_cli_json_input_size_gives_exact_macs(capsys):
    from archsearch import macs

    assert main(["inspect", "--format", "json", "--input-size", "12x10", "wdsr_nsr_x2"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["macs"] == macs(zoo_spec("wdsr_nsr_x2"), 12, 10)


def test_cli_table_and_spec_file(tmp_path, capsys):
    path = zoo_spec("xsrcnn_f").save(tmp_path / "x.yaml")
    assert main(["inspect", "xsrcnn_f", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("32,673") == 2


def test_cli_list(capsys):
    assert main(["inspect", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in ZOO)
    assert main(["inspect", "--list", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["name"] for r in rows] == ZOO
