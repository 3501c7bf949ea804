"""Export: standalone torch-only files equal the framework's models; TorchScript and ONNX run with the same
outputs; trials are exported from a study's ledger with clear errors for what cannot be exported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import archsearch as A
from archsearch.cli import main
from archsearch.export import export_model

ZOO = A.zoo_names()


def _model_with_stats(spec, seed: int = 0):
    """A built model whose BatchNorm running statistics are not the identity (so eval mode is really tested)."""
    torch.manual_seed(seed)
    m = A.build(spec).eval()
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.copy_(torch.rand(mod.num_features, generator=g) * 0.2 - 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    return m


@pytest.fixture(scope="module")
def exported_zoo(tmp_path_factory):
    """Every zoo model exported (py + weights), with a test input and the framework's output saved beside it."""
    root = tmp_path_factory.mktemp("zoo_export")
    cases = {}
    for name in ZOO:
        spec = A.zoo_spec(name)
        model = _model_with_stats(spec)
        paths = export_model(spec, root, state_dict=model.state_dict(), formats=("py",))
        x = torch.rand(2, spec.in_channels, 18, 22, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            y = model(x)
        save_file({"x": x, "y": y.contiguous()}, str(root / f"{name}.io.safetensors"))
        cases[name] = (spec, model, paths, x, y)
    return root, cases


def test_every_zoo_export_matches_in_a_process_without_archsearch(exported_zoo):
    root, cases = exported_zoo
    script = textwrap.dedent(f"""
        import importlib.util, json, sys
        sys.modules["archsearch"] = None  # any import of archsearch now fails
        try:
            import archsearch  # noqa: F401
            raise SystemExit("archsearch was importable")
        except ImportError:
            pass
        import torch
        from safetensors.torch import load_file
        out = {{}}
        for name in {list(cases)!r}:
            spec = importlib.util.spec_from_file_location(name, r"{root}/" + name + ".py")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            net = mod.Net.from_safetensors(r"{root}/" + name + ".safetensors").eval()
            io = load_file(r"{root}/" + name + ".io.safetensors")
            with torch.no_grad():
                out[name] = (net(io["x"]) - io["y"]).abs().max().item()
            banned = [m for m in sys.modules if m.startswith("archsearch") and sys.modules[m] is not None]
            assert not banned, banned
        print(json.dumps(out))
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=root)
    assert res.returncode == 0, res.stderr[-3000:]
    diffs = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(diffs) == set(ZOO)
    assert max(diffs.values()) <= 1e-5, diffs


def test_generated_file_imports_torch_only_and_holds_only_needed_code(exported_zoo):
    root, _ = exported_zoo
    src = (root / "dncnn_s.py").read_text()
    imports = [line for line in src.splitlines() if line.startswith(("import ", "from "))]
    assert all("archsearch" not in line for line in imports)
    assert {line.split()[1] for line in imports} <= {"__future__", "math", "types", "torch", "torch.nn.functional"}
    assert "XUnitModule" not in src and "NSRResBlockModule" not in src  # no code for blocks it does not use
    assert "XUnitModule" in (root / "xdncnn.py").read_text()
    info = json.loads((root / "xdncnn.json").read_text())
    assert info["params"] == 303_680 and info["spec_hash"] == A.zoo_spec("xdncnn").hash
    assert A.GraphSpec.from_file(root / "xdncnn.yaml") == A.zoo_spec("xdncnn")


# ---------------------------------------------------------------------------------------------------------
# pt2 (torch.export), ONNX (dynamo exporter), TorchScript: the same outputs at other sizes than exported
# ---------------------------------------------------------------------------------------------------------
#: One small spec per block family (the fast suite); every zoo model runs in the slow test below.
FAMILY_SPECS = {
    "convnet": ("convnet", {"depth": 3, "width": 8}),
    "xnet": ("xnet", {"depth": 3, "width": 8, "xunit_kernel_size": 3, "batch_norm": True}),
    "srcnn_xunit": ("srcnn", {"n1": 8, "n2": 4, "f1": 3, "f2": 3, "f3": 3, "activation": "xunit",
                              "xunit_kernel_size": 3}),
    "memnet": ("memnet", {"n_blocks": 2, "recursions": 2, "channels": 8, "multi_supervised": True}),
    "nsr_resnet": ("nsr_resnet", {"n_blocks": 2, "channels": 8, "sparsity_groups": 2}),
    "edsr_nsr_x2": ("edsr_nsr", {"n_blocks": 1, "channels": 8, "sparsity_groups": 2, "cardinality": 2}),
    "cscnet_s2": ("cscnet", {"filters": 8, "unfoldings": 2, "kernel_size": 5, "stride": 2}),
    "deep_ksvd": ("deep_ksvd", {"atoms": 16, "iterations": 2, "patch_size": 4, "mlp_hidden": (8,)}),
}
TOLERANCE = 1e-5  # the other formats' (the generated .py, TorchScript, ONNX)


def _family_spec(key: str):
    from archsearch.families import get_family

    family, kwargs = FAMILY_SPECS[key]
    return get_family(family).fn(**kwargs, name=key)  # the layout function: below the knobs' search ranges


def _other_input(spec, dims, *, batch: bool = True):
    """An input of another batch, height and width than the export's example, inside the export's constraints."""
    m = dims.size_multiple or 1
    h, w = (2 * m, 3 * m) if m > 1 else (13, 18)
    if dims.size_multiple is None:
        h, w = 16, 16  # fixed: the example's size
    n = 3 if batch and dims.batch else 1
    return torch.rand(n, spec.in_channels, h, w, generator=torch.Generator().manual_seed(5))


def _check_formats(specs: dict, root: Path, formats=("pt2", "onnx", "torchscript")) -> dict[str, dict[str, float]]:
    """Export every spec (weights with non-trivial BN statistics) in ``formats``; run the ``.pt2`` files with
    ``torch.export.load`` in a process where archsearch cannot be imported, ONNX in onnxruntime and TorchScript
    here; return the max |difference| to the framework's output per spec and format."""
    from archsearch.export import export_dims, quiet_jit

    cases, diffs = {}, {}
    for key, spec in specs.items():
        model = _model_with_stats(spec)
        paths = export_model(spec, root, name=key, state_dict=model.state_dict(), formats=("py", *formats),
                             example_size=(16, 16))
        dims = export_dims(spec)
        x = _other_input(spec, dims)
        with torch.no_grad():
            y = model(x)
        save_file({"x": x, "y": y.contiguous()}, str(root / f"{key}.io.safetensors"))
        cases[key] = paths
        diffs[key] = {}
        info = json.loads(paths["info"].read_text())
        if "onnx" in formats:
            ort = pytest.importorskip("onnxruntime")
            xo = x if info["onnx"]["batch"] == "dynamic" else x[:1]
            sess = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
            out = sess.run(None, {"input": xo.numpy()})[0]
            with torch.no_grad():
                ref = model(xo).numpy()
            assert out.shape == ref.shape, (key, out.shape, ref.shape)
            diffs[key]["onnx"] = float(np.abs(out - ref).max())
        if "torchscript" in formats:  # traced at batch 1 and 16 x 16: checked there
            x16 = torch.rand(1, spec.in_channels, 16, 16, generator=torch.Generator().manual_seed(3))
            with quiet_jit(), torch.no_grad():
                ts = torch.jit.load(str(paths["torchscript"]))
                diffs[key]["torchscript"] = float((ts(x16) - model(x16)).abs().max())
    if "pt2" in formats:
        script = textwrap.dedent(f"""
            import json, sys
            sys.modules["archsearch"] = None  # any import of archsearch now fails
            import torch
            from safetensors.torch import load_file
            out = {{}}
            for name in {list(cases)!r}:
                program = torch.export.load(r"{root}/" + name + ".pt2")
                io = load_file(r"{root}/" + name + ".io.safetensors")
                with torch.no_grad():
                    y = program.module()(io["x"])
                assert y.shape == io["y"].shape, (name, y.shape, io["y"].shape)
                out[name] = (y - io["y"]).abs().max().item()
            print(json.dumps(out))
        """)
        res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=root)
        assert res.returncode == 0, res.stderr[-3000:]
        for key, d in json.loads(res.stdout.strip().splitlines()[-1]).items():
            diffs[key]["pt2"] = d
    return diffs


#: The fast suite's ONNX representatives (the dynamo exporter costs seconds a model): MemNet on the plain
#: dynamo path, NSR (dynamo, ONNX batch 1), CSC (the legacy fallback); the slow test runs ONNX for every family.
ONNX_FAST = ("memnet", "nsr_resnet", "cscnet_s2")


def test_pt2_onnx_and_torchscript_match_for_every_block_family(tmp_path, capfd):
    """.pt2 and TorchScript for every block family, ONNX for :data:`ONNX_FAST`; no deprecation or future warning
    and no exporter chatter reaches the output from our own calls."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        diffs = _check_formats({key: _family_spec(key) for key in FAMILY_SPECS}, tmp_path, ("pt2", "torchscript"))
        onnx = _check_formats({key: _family_spec(key) for key in ONNX_FAST}, tmp_path / "onnx", ("onnx",))
    bad = [str(w.message) for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert not bad, bad
    out, err = capfd.readouterr()
    assert out == "" and "torchvision" not in err, (out, err)
    assert all(set(d) == {"pt2", "torchscript"} for d in diffs.values()), diffs
    assert all(set(d) == {"onnx"} for d in onnx.values()), onnx
    assert max(v for d in (*diffs.values(), *onnx.values()) for v in d.values()) <= TOLERANCE, (diffs, onnx)
    info = {k: json.loads((tmp_path / f"{k}.json").read_text()) for k in FAMILY_SPECS}
    assert info["cscnet_s2"]["pt2"]["height"] == "dynamic, multiple of 2"
    assert info["nsr_resnet"]["pt2"]["batch"] == "dynamic"
    assert info["deep_ksvd"]["pt2"]["height"] == "dynamic, at least 5"
    onnx_info = {k: json.loads((tmp_path / "onnx" / f"{k}.json").read_text())["onnx"] for k in ONNX_FAST}
    assert onnx_info["cscnet_s2"]["exporter"] == "legacy" and "remainder" in onnx_info["cscnet_s2"]["reason"]
    assert onnx_info["nsr_resnet"]["batch"] == "fixed"
    for k in ("memnet", "nsr_resnet"):
        assert (onnx_info[k]["exporter"], onnx_info[k]["opset"]) == ("dynamo", A.export.ONNX_OPSET)


#: LIDIA's zoo models are exported by their own test below: tracing their 29 x 29-offset search takes minutes
#: per format, and the dynamo ONNX export of even a 5 x 5-window LIDIA took 534 s (max |diff| 6.4e-5).
EXPORT_ZOO = [name for name in ZOO if not name.startswith("lidia")]


@pytest.mark.slow
def test_every_zoo_model_round_trips_as_pt2_onnx_and_torchscript(tmp_path):
    """Every zoo model in every format (and every block family's ONNX): minutes of CPU, so `slow`."""
    diffs = _check_formats({name: A.zoo_spec(name) for name in EXPORT_ZOO}, tmp_path)
    print(json.dumps(diffs, indent=1))  # the measured max |difference| per model and format (run with -s)
    assert set(diffs) == set(EXPORT_ZOO)
    diffs.update(_check_formats({key: _family_spec(key) for key in FAMILY_SPECS}, tmp_path / "families", ("onnx",)))
    assert max(v for d in diffs.values() for v in d.values()) <= TOLERANCE, diffs


@pytest.mark.slow
def test_lidia_round_trips_as_pt2_at_its_exported_shape(tmp_path):
    """LIDIA as .pt2 (batch, height and width fixed: its padding, bands and fold sizes are Python integers of the
    shape), reloaded where archsearch cannot be imported: equal to the framework's output (measured: 0)."""
    from archsearch.families import get_family

    spec = get_family("lidia").fn(small=True, window=5, neighbours=3)
    dims = A.export.export_dims(spec)
    assert (dims.batch, dims.size_multiple) == (False, None)
    diffs = _check_formats({"lidia_tiny": spec}, tmp_path, ("pt2",))
    assert diffs["lidia_tiny"]["pt2"] <= TOLERANCE


def test_export_dims_follow_the_blocks_limits():
    from archsearch.export import export_dims

    assert export_dims(A.zoo_spec("dncnn_s")) == A.export.ExportDims(True, 1, 2)
    csc = export_dims(A.zoo_spec("cscnet"))
    assert (csc.batch, csc.size_multiple, bool(csc.onnx_legacy)) == (True, 8, True)
    nsr = export_dims(A.zoo_spec("edsr_nsr_x4"))
    assert (nsr.batch, nsr.size_multiple, nsr.onnx_batch) == (True, 1, False)
    from archsearch.families import get_family

    patches = export_dims(get_family("nsr_resnet").fn(n_blocks=1, channels=8, pool=4))
    assert (patches.batch, patches.size_multiple) == (False, None) and "groups = batch x patches" in patches.reasons[0]
    hybrid = export_dims(get_family("csc_hybrid").fn(filters=8, unfoldings=2, kernel_size=5, stride=4, cnn_width=8))
    assert hybrid.size_multiple == 4


def test_zoo_export_cli_with_official_dncnn_weights(tmp_path, capsys):
    weights = Path(__file__).resolve().parents[2] / "shared" / "pretrained" / "dncnn_s_sigma25.pt"
    if not weights.exists():
        pytest.skip(f"official DnCNN weights not found at {weights}")
    assert main(["export", "--zoo", "dncnn_s", "--weights", str(weights), "--out", str(tmp_path)]) == 0
    from archsearch.export import load_standalone

    net = load_standalone(tmp_path / "dncnn_s.py").Net.from_safetensors(str(tmp_path / "dncnn_s.safetensors"))
    ref = A.build(A.zoo_spec("dncnn_s")).eval()
    from archsearch.blocks.conv import load_official_dncnn

    load_official_dncnn(ref, str(weights))
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert (net.eval()(x) - ref(x)).abs().max() == 0


def test_export_errors(capsys):
    assert main(["export", "--zoo", "dncnn"]) == 2
    assert "registered: dncnn_s" in capsys.readouterr().err
    assert main(["export", "--zoo", "srcnn", "--format", "pt"]) == 2
    assert "allowed: py, pt2, onnx, torchscript" in capsys.readouterr().err


def test_export_trials_from_a_study(tmp_path, capsys, monkeypatch):
    import yaml

    import archsearch.study.trial as runner
    from archsearch import run_study
    from archsearch.study import load_study

    root = Path(__file__).resolve().parents[1]
    body = {"name": "exp", "search_space": str(root / "search_spaces" / "xunit_fig4.yaml"),
            "task": {"name": "denoise", "sigma": 25}, "budget": {"metric": "params", "value": 3000, "tolerance": 0.1},
            "sweep": {"over": "xunit_kernel_size", "values": [1, 5]}, "seeds": [0],
            "training": {"steps": 3, "batch_size": 4, "patch_size": 24, "val_every": 3},
            "output_dir": str(tmp_path / "out")}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(body))
    real = runner.execute

    def flaky(study, design, args, seed, **kw):  # one trial fails, so exporting it must be refused
        if args.get("xunit_kernel_size") == 5:
            raise RuntimeError("boom")
        return real(study, design, args, seed, **kw)

    monkeypatch.setattr(runner, "execute", flaky)
    study = load_study(path)
    run_study(study, progress=False, echo=lambda *_: None)
    trials = {t.user_attrs["point"].split("|")[1]: t for t in
              __import__("archsearch.study.ledger", fromlist=["x"]).open_study(study, create=False).get_trials()}
    failed = trials["xunit_kernel_size=5"]
    capsys.readouterr()
    assert main(["export", str(path), "--trial", str(failed.number)]) == 2
    assert "is FAIL" in capsys.readouterr().err
    assert main(["export", str(path), "--trial", "99"]) == 2
    assert "has no trial 99; trials: 0, 1, 2" in capsys.readouterr().err
    assert main(["export", str(path), "--trial", "best", "--out", str(tmp_path / "best"), "--format", "py,pt2"]) == 0
    best = max((t for t in trials.values() if t.state.name == "COMPLETE"), key=lambda t: t.user_attrs["psnr"])
    py = tmp_path / "best" / f"exp_trial{best.number}.py"
    assert py.exists()
    from archsearch.export import load_standalone

    net = load_standalone(py).Net.from_safetensors(str(py.with_suffix(".safetensors"))).eval()
    model = A.build(A.GraphSpec.from_file(study.output_path(best.user_attrs["spec_path"]))).eval()
    from safetensors.torch import load_file

    model.load_state_dict(load_file(study.output_path(best.user_attrs["checkpoint"])))
    x = torch.rand(1, 1, 20, 20)
    with torch.no_grad():
        assert (net(x) - model(x)).abs().max() <= 1e-6
        x = torch.rand(3, 1, 17, 23)  # another batch and size than exported
        program = torch.export.load(str(py.with_suffix(".pt2"))).module()
        assert (program(x) - model(x)).abs().max() <= 1e-5
    assert main(["export", str(path), "--trial", "pareto", "--out", str(tmp_path / "pareto")]) == 0
    done = [t for t in trials.values() if t.state.name == "COMPLETE"]
    front = [t for t in done if not any(  # non-dominated in (fewer params, higher PSNR), computed here anew
        u.user_attrs["n_params"] <= t.user_attrs["n_params"] and u.values[0] >= t.values[0]
        and (u.user_attrs["n_params"] < t.user_attrs["n_params"] or u.values[0] > t.values[0]) for u in done)]
    assert front and len(front) < len(trials)
    assert sorted(p.name for p in (tmp_path / "pareto").glob("*.py")) == sorted(
        f"{study.name}_trial{t.number}.py" for t in front)


# ---------------------------------------------------------------------------------------------------------
# code injection: user text reaches generated code only as checked names or repr literals
# ---------------------------------------------------------------------------------------------------------
HOSTILE = [
    'x"""\nimport os; os.system("touch PWNED")\n"""',
    "x'''\nimport os\n'''",
    'a"b', "a'b", "a\\b", "a\nb", "import os", "__import__('os').system('touch PWNED')", "../../etc/x", "/abs",
    ".hidden", "-flag", "", "a b", "é", "x" * 65, "a;b", "a#b", "{a}",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_spec_and_block_names_are_refused_at_load(tmp_path, name):
    from archsearch.errors import SpecError

    base = {"name": "ok", "in_channels": 1, "out_channels": 1,
            "blocks": [{"type": "conv", "in_channels": 1, "out_channels": 1, "kernel_size": 3}]}
    for body, key in (({**base, "name": name}, "name"),
                      ({**base, "blocks": [{**base["blocks"][0], "name": name}]}, "blocks[0].name")):
        path = tmp_path / "spec.json"
        path.write_text(json.dumps(body))
        with pytest.raises(SpecError) as info:
            A.GraphSpec.from_file(path)
        msg = str(info.value)
        assert msg.startswith(f"{path}: {key}: must be a name of 1-64 ASCII letters"), msg
        assert "\n" not in msg
    with pytest.raises(SpecError):  # also when built in Python, not loaded
        A.zoo_spec("srcnn").__class__(name=name, in_channels=1, out_channels=1, nodes=A.zoo_spec("srcnn").nodes)


def test_export_writes_user_strings_only_as_literals_and_imports_cleanly(tmp_path, monkeypatch):
    """Names with the harshest characters the safe pattern allows, and string fields full of quotes, backslashes,
    newlines and `import os`, export to a file that imports, holds no injected statement and runs nothing."""
    import ast
    from dataclasses import dataclass

    from archsearch.export import python_source
    from archsearch.spec import Block, register_block

    @register_block
    @dataclass(frozen=True)
    class _Tagged(Block):  # a block with free-text string fields, exported through Block.namespace (repr)
        type = "_test_tagged_identity"
        channels: int = 1
        tag: str = ""
        note: str = ""

        @property
        def input_channels(self):
            return (self.channels,)

        @property
        def out_channels(self):
            return self.channels

        def params_by_role(self):
            return {}

        def macs_per_pixel(self):
            from fractions import Fraction

            return Fraction(0)

        def build(self):
            return torch.nn.Identity()

        def export(self, ctx):
            return f"nn.Identity() if {self.namespace()} else None"

    try:
        evil = ['"""\nimport os; os.system("touch PWNED")\n"""', "'''\nimport os\n'''", "\\", "\\'", "\n",
                "import os", "{spec.name}", "\x00", "\u2028"]
        conv = A.spec.block_from_dict({"type": "conv", "in_channels": 1, "out_channels": 1, "kernel_size": 3})
        nodes = [A.spec.Node("c0", conv, ("input",))]
        for i, text in enumerate(evil):
            nodes.append(A.spec.Node(f"t_{i}-x", _Tagged(1, text, text[::-1]), (nodes[-1].name,)))
        spec = A.GraphSpec(name="n-a.m_e-9", in_channels=1, out_channels=1, nodes=tuple(nodes),
                           description='"""\nimport os\n"""')
        src = python_source(spec)
        tree = ast.parse(src)  # valid Python
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert {a.name for n in imports for a in n.names} <= {"annotations", "math", "SimpleNamespace", "torch",
                                                              "torch.nn.functional", "nn", "load_file"}
        assert "os" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        consts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        for text in evil:
            assert text in consts and text[::-1] in consts  # round-tripped as literals, exactly
        out = tmp_path / "out"
        monkeypatch.chdir(tmp_path)
        paths = export_model(spec, out, formats=("py",))
        from archsearch.export import load_standalone

        mod = load_standalone(paths["py"])
        assert mod.SPEC_NAME == "n-a.m_e-9" and mod.__doc__.startswith("n-a.m_e-9: a standalone")
        net = mod.Net.from_safetensors(str(paths["weights"]))
        assert [k for k in net.blocks.keys()][1:] == [f"t_{i}-x" for i in range(len(evil))]
        assert not list(tmp_path.rglob("PWNED"))
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
    finally:
        from archsearch import spec as S

        S.BLOCKS.remove("_test_tagged_identity")


def test_export_name_is_checked_before_anything_is_written(tmp_path):
    from archsearch.errors import SpecError

    for bad in ("../../escape", "/abs", ".hidden", "a b", 'x"', "x" * 201):
        with pytest.raises(SpecError, match="name: must be a file name of 1-200 ASCII"):
            export_model(A.zoo_spec("srcnn"), tmp_path / "out", name=bad)
    assert not (tmp_path / "out").exists()
