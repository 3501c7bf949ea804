"""Bad input at load: every mistake in a study, search-space or spec file is one error naming the file,
the key path and what is allowed -- types and rules of family arguments, training settings, seeds, executor,
storage, names, output folders, duplicate keys and encodings. (The CLI-level fuzz test is test_fuzz_inputs.py.)"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from archsearch.errors import ConfigError, SpecError
from archsearch.schema import load_yaml, read_text_file
from archsearch.spec import SAFE_NAME, check_name
from archsearch.study import load_search_space, load_study
from archsearch.study.config import check_storage_url
from archsearch.study.storage import mask_url
from archsearch.testing.studies import write_study

SPACE = {"name": "sp", "designs": [{"name": "xnet", "family": "xnet", "fixed": {"depth": 4}, "free_knob": "width",
                                    "search": {"xunit_kernel_size": {"choices": [1, 3]}}}]}


def _load_error(path: Path, loader=load_study) -> str:
    with pytest.raises(ConfigError) as info:
        loader(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
    return msg[len(str(path)) + 2:]


# ---------------------------------------------------------------------------------------------------------
# study files
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, expected", [
    ({"sweep": {"over": "xunit_kernel_size", "values": ["one", "three"]}},
     "sweep.values[0]: must be an integer (argument 'xunit_kernel_size' of family 'xnet' (design 'xnet')), got 'one'"),
    ({"sweep": {"over": "xunit_kernel_size", "values": [1.5, 3.0]}}, "sweep.values[0]: must be an integer"),
    ({"sweep": {"over": "xunit_kernel_size", "values": [1, 4]}},
     "sweep.values[1]: xunit_kernel_size=4 breaks a rule of family 'xnet' (design 'xnet'): must be an integer in "
     "1..31 in steps of 2, got 4"),
    ({"sweep": {"over": "xunit_kernel_size", "values": [1, 1]}}, "sweep.values[1]: repeats the value 1"),
    ({"sweep": {"over": "xunit_kernel_size", "values": [[1]]}}, "sweep.values[0]: must be a number, a string"),
    ({"sweep": {"over": "width", "values": [8]}}, "sweep.over: 'width' is the free knob of design 'convnet'"),
    ({"sweep": {"over": "activation_param_pct", "via": "xunit_kernel_size", "values": [150]}},
     "sweep.values[0]: must be a percentage in 0..100, got 150"),
    ({"sweep": {"over": "xunit_kernel_size", "values": [1], "pct_tolerance": -1}}, "sweep.pct_tolerance: must be"),
    ({"seeds": [-1]}, "seeds[0]: must be an integer with 0 <= seed < 2**31, got -1"),
    ({"seeds": [0, 10**23]}, "seeds[1]: must be an integer with 0 <= seed < 2**31"),
    ({"seeds": [3, 3]}, "seeds[1]: repeats the seed 3"),
    ({"seeds": []}, "seeds: must list at least one seed"),
    ({"training": {"weight_decay": -1}}, "training.weight_decay: must be a finite number >= 0, got -1.0"),
    ({"training": {"device": "tpu"}}, "training.device: must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    ({"training": {"val_crop": 0}}, "training.val_crop: must be an integer in 1..8,192 or null"),
    ({"training": {"lr": float("inf")}}, "training.lr: must be a finite number, got inf"),
    ({"training": {"lr": -0.1}}, "training.lr: must be a finite number > 0, got -0.1"),
    ({"training": {"steps": 0}}, "training.steps: must be an integer in 1..10,000,000, got 0"),
    ({"training": {"steps": 99999999999999999999999999}}, "training.steps: must be an integer in 1..10,000,000"),
    ({"training": {"schedule": "cosinee"}}, "training.schedule: must be one of step, cosine, constant, got 'cosinee' "
                                            "(did you mean 'cosine'?)"),
    ({"training": {"loss": "l3"}}, "training.loss: must be one of l1, l2, got 'l3'"),
    ({"training": {"seed": -5}}, "training.seed: must be an integer with 0 <= seed < 2**31"),
    ({"data": {"val_images": -3}}, "data.val_images: must be an integer >= 0"),
    ({"data": {"train": ""}}, "data.train: must name a dataset"),
    ({"executor": {"cpus_per_trial": -2}}, "executor.cpus_per_trial: must be a finite number > 0, got -2.0"),
    ({"executor": {"gpus_per_trial": -1}}, "executor.gpus_per_trial: must be a finite number >= 0, got -1.0"),
    ({"executor": {"workers": 0}}, "executor.workers: must be auto or an integer in 1..1024, got 0"),
    ({"budget": {"value": float("inf")}}, "budget.value: must be a finite positive number of params, got inf"),
    ({"budget": {"value": 3000, "tolerance": 2}}, "budget.tolerance: must be a fraction in [0, 1)"),
    ({"task": {"name": "denoise", "sigma": float("nan")}}, "task.sigma: must be a finite number, got nan"),
    ({"name": ""}, "name: must be a name of 1-64 ASCII letters"),
    ({"name": "../../x"}, "name: must be a name of 1-64 ASCII letters"),
    ({"name": "/abs/x"}, "name: must be a name of 1-64 ASCII letters"),
    ({"name": 'a"""\nimport os'}, "name: must be a name of 1-64 ASCII letters"),
    ({"output_dir": ""}, "output_dir: must be a folder or null"),
    ({"output_dir": "/"}, "output_dir: / is the filesystem root"),
    ({"output_dir": "runs"}, "output_dir: runs is the root of all study folders"),
    ({"search": {"sampler": "tpe", "n_trials": 0}, "sweep": None}, "search.n_trials: must be an integer in 1..1,000,000"),
])
def test_bad_settings_name_the_file_the_key_and_what_is_allowed(tmp_path, override, expected):
    override = dict(override)
    name = override.pop("name", None)
    path = write_study(tmp_path, "study", **override)
    if name is not None:
        body = yaml.safe_load(path.read_text())
        path.write_text(yaml.safe_dump({**body, "name": name}))
    msg = _load_error(path)
    assert msg.startswith(expected), msg


def test_output_dir_holding_the_study_file_is_refused(tmp_path, monkeypatch):
    (tmp_path / "studies").mkdir()
    path = write_study(tmp_path / "studies", "s", output_dir=str(tmp_path))
    assert "holds the study file" in _load_error(path)
    path = write_study(tmp_path / "studies", "s", output_dir=str(tmp_path / "studies"))
    assert "holds the study file" in _load_error(path)
    with pytest.raises(ConfigError, match=r"s.yaml: --output-dir: .* holds the study file"):
        load_study(write_study(tmp_path / "studies", "s"), output_dir=tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="--output-dir: runs is the root of all study folders"):
        load_study(write_study(tmp_path / "studies", "s"), output_dir="runs")
    ok = load_study(write_study(tmp_path / "studies", "s", output_dir=None))
    assert ok.output_dir == Path("runs") / "s"
    assert not (tmp_path / "runs").exists()  # loading writes nothing
    assert load_study(write_study(tmp_path / "studies", "s"), output_dir=tmp_path / "elsewhere").output_dir == \
        tmp_path / "elsewhere"


def test_profile_names_and_profile_errors(tmp_path):
    path = write_study(tmp_path, "s", profiles={"../up": {"seeds": [1]}})
    assert _load_error(path).startswith("profiles.../up: must be a name of")
    path = write_study(tmp_path, "s", profiles={"bad": {"seeds": [-1]}})
    with pytest.raises(ConfigError, match=r"seeds\[0\] \(profile 'bad'\): must be an integer with 0 <= seed"):
        load_study(path, "bad")
    assert load_study(path).config.seeds == (0,)  # the default is unaffected


@pytest.mark.parametrize("url, fragment", [
    ("oracle://scott:tiger-secret@db/orcl", "unknown or unsupported database 'oracle'"),
    ("postgresq://u:hunter2-secret@h/db", "unknown or unsupported database 'postgresq'"),
    ("u:secret-pw@host/db", "is not a URL of the form dialect[+driver]://"),
    ("postgresql+asyncpg://u:secret-pw@h/db", "driver 'postgresql+asyncpg' is not supported"),
    ("sqlite://", "an in-memory SQLite database"),
    ("sqlite:///:memory:", "an in-memory SQLite database"),
    ({"url": "postgresql://u@h/db", "password": "secret-pw"}, "storage: must be a database URL"),
])
def test_storage_urls_are_checked_at_load_and_passwords_never_shown(tmp_path, url, fragment):
    msg = _load_error(write_study(tmp_path, "s", storage=url))
    assert msg.startswith("storage: ") and fragment in msg, msg
    assert "secret" not in msg and "tiger" not in msg and "hunter2" not in msg


def test_allowed_storage_urls_load_and_display_without_password(tmp_path):
    for url in ("sqlite:///ledger.db", "sqlite:////tmp/x/ledger.db", "postgresql://u:pw@h:5432/db",
                "postgresql+psycopg2://u:pw@h/db", "mysql+pymysql://u:pw@h/db"):
        check_storage_url(url)
    study = load_study(write_study(tmp_path, "s", storage="postgresql://user:s3cret@host/db"))
    assert study.storage_url == "postgresql://user:s3cret@host/db"
    assert study.storage_display == "postgresql://user:***@host/db"
    assert mask_url("mysql://a:b@h/d") == "mysql://a:***@h/d"


# ---------------------------------------------------------------------------------------------------------
# search-space files: fixed and searched arguments against the family's signature
# ---------------------------------------------------------------------------------------------------------
def _space(tmp_path: Path, change) -> Path:
    body = copy.deepcopy(SPACE)
    change(body["designs"][0])
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["fixed"].update(depth="three"),
     "designs[0].fixed.depth: must be an integer (argument 'depth' of family 'xnet'), got 'three'"),
    (lambda d: d["fixed"].update(kernel_size=4),
     "designs[0].fixed.kernel_size: kernel_size=4 breaks a rule of family 'xnet': must be odd and >= 1"),
    (lambda d: d["fixed"].update(xunit_design="BN+XX"),
     "designs[0].fixed.xunit_design: xunit_design='BN+XX' breaks a rule of family 'xnet': design: unknown xUnit "
     "design 'BN+XX'; allowed: BN+RL+CD+BN+GS"),
    (lambda d: d["fixed"].update(depth=1), "designs[0].fixed.depth: depth=1 breaks a rule of family 'xnet': must be "
                                           "an integer in 2..200"),
    (lambda d: d["fixed"].update(batch_norm="yes"), "designs[0].fixed.batch_norm: must be true or false"),
    (lambda d: d["fixed"].update(name="a b"), "designs[0].fixed.name: name='a b' breaks a rule of family 'xnet': "
                                              "must be a name of"),
    (lambda d: d.update(name="../x"), "designs[0].name: must be a name of"),
    (lambda d: d["search"].update(xunit_kernel_size={"choices": [1, 4]}),
     "designs[0].search.xunit_kernel_size.choices[1]: xunit_kernel_size=4 breaks a rule"),
    (lambda d: d["search"].update(xunit_kernel_size={"low": 1, "high": 9}),
     "designs[0].search.xunit_kernel_size: xunit_kernel_size=2 breaks a rule"),
    (lambda d: d["search"].update(xunit_kernel_size={"low": 1.5, "high": 9}),
     "designs[0].search.xunit_kernel_size: 'xunit_kernel_size' is an integer argument"),
    (lambda d: d["search"].update(xunit_design={"low": 1, "high": 2}),
     "designs[0].search.xunit_design: 'xunit_design' is a string: search it with `choices`"),
    (lambda d: d["search"].update(xunit_kernel_size={"low": 1, "high": 9, "step": 0}),
     "designs[0].search.xunit_kernel_size.step: must be a number > 0"),
    (lambda d: d.update(family="resnet", free_knob="channels", fixed={"branch_scale": float("nan")}, search={}),
     "designs[0].fixed.branch_scale: must be a finite number"),
])
def test_design_arguments_are_type_and_rule_checked(tmp_path, change, expected):
    msg = _load_error(_space(tmp_path, change), load_search_space)
    assert msg.startswith(expected), msg


def test_a_rule_the_free_knob_can_meet_is_not_an_error(tmp_path):
    # cardinality 3 does not divide the default width, but the solver may pick channels that it divides
    space = load_search_space(_space(tmp_path, lambda d: d.update(
        family="nsr_resnet", free_knob="channels", fixed={"cardinality": 3}, search={})))
    assert space.designs[0].fixed == {"cardinality": 3}
    ok = _space(tmp_path, lambda d: d["search"].update(xunit_kernel_size={"low": 1, "high": 9, "step": 2}))
    assert load_search_space(ok).designs[0].search["xunit_kernel_size"].high == 9


# ---------------------------------------------------------------------------------------------------------
# YAML: duplicate keys, encodings
# ---------------------------------------------------------------------------------------------------------
def test_duplicate_keys_are_refused_with_key_path_and_lines(tmp_path):
    path = write_study(tmp_path, "s")
    text = path.read_text().replace("training:\n", "training:\n  lr: 0.1\n  lr: 0.2\n", 1)
    path.write_text(text)
    msg = _load_error(path)
    assert msg.startswith("training.lr: duplicate key on line") and "(first on line" in msg, msg
    with pytest.raises(SpecError, match=r"^f.yaml: a\[1\].b: duplicate key on line 4 \(first on line 3\)"):
        load_yaml("a:\n  - x: 1\n  - b: 1\n    b: 2\n", file="f.yaml")
    assert load_yaml("base: &b {x: 1}\nd:\n  <<: *b\n  x: 2\n") == {"base": {"x": 1}, "d": {"x": 2}}  # merge keys ok


def test_alias_bomb_is_checked_in_linear_time():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    assert isinstance(load_yaml(bomb), dict)  # shared nodes visited once; nothing is expanded


@pytest.mark.parametrize("content, fragment", [
    ("name: s\n".encode("utf-16"), "is UTF-16 text (byte-order mark); save it as UTF-8"),
    ("name: s\n".encode("utf-16-be"), "holds NUL bytes: a binary file or UTF-16/32 text"),
    ("name: s\n".encode("utf-32"), "is UTF-32 text"),
    (b"name: caf\xe9\n", "is not UTF-8 text (invalid byte 0xe9 on line 1); save it as UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "holds NUL bytes"),
])
def test_encoding_problems_are_one_line_naming_the_file(tmp_path, content, fragment):
    path = tmp_path / "study.yaml"
    path.write_bytes(content)
    for loader in (load_study, load_search_space):
        assert fragment in _load_error(path, loader)
    with pytest.raises(SpecError, match=f"^{path}: "):
        read_text_file(path)


def test_utf8_with_bom_is_fine(tmp_path):
    path = write_study(tmp_path, "s")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_study(path).name == "s"


def test_a_folder_or_a_missing_file(tmp_path):
    assert "is a folder" in _load_error(tmp_path, load_study)
    assert "cannot read YAML file" in _load_error(tmp_path / "missing.yaml", load_study)


# ---------------------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a", "A_1", "convnet_d4_w64", "x.y-z", "0", "_", "a" * 64])
def test_safe_names(name):
    assert SAFE_NAME.fullmatch(name) and check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "/x", "a/b", "a\\b", ".hidden", "-x", "a b", "a\n",
                                  'a"', "a'", "é", "a" * 65, "a\x00", None, 3])
def test_unsafe_names(name):
    with pytest.raises(SpecError, match="must be a name of 1-64 ASCII letters"):
        check_name(name)


def test_block_names_have_no_dots():
    with pytest.raises(SpecError, match="digits, '_' or '-', not starting with '-'"):
        check_name("a.b", "blocks[0].name", dots=False)


# ---------------------------------------------------------------------------------------------------------
# data checked against the settings before a study starts
# ---------------------------------------------------------------------------------------------------------
def test_study_data_check_names_study_key_and_image(tmp_path):
    from archsearch.data import Image
    from archsearch.study.images import check_study_data
    from archsearch.tasks import make_task

    study = load_study(write_study(tmp_path, "s", training={"steps": 4, "patch_size": 40, "val_crop": 8}))
    task = make_task("denoise", sigma=25)
    big = [Image("big", torch.zeros(1, 64, 64), "d/big.png")]
    small = [Image("small", torch.zeros(1, 30, 64), "d/small.png")]
    check_study_data(load_study(write_study(tmp_path, "s")), task, big, big, big)
    with pytest.raises(ConfigError, match=r"s.yaml: training.patch_size: d/small.png: training image is 30x64, "
                                          r"smaller than the 40x40 training patch"):
        check_study_data(study, task, big + small, big, big)
    with pytest.raises(ConfigError, match=r"s.yaml: training.val_crop: d/big.png: validation image is 8x8 after"):
        check_study_data(study, task, big, big, big)
    tiny = [Image("tiny", torch.zeros(1, 10, 10), "d/tiny.png")]
    with pytest.raises(ConfigError, match=r"s.yaml: data.test: d/tiny.png: test image is 10x10, smaller than 11x11"):
        check_study_data(load_study(write_study(tmp_path, "s")), task, big, big, tiny)
