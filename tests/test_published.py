"""The papers' published numbers as data (archsearch/resources/published.yaml): validation at load, the values
the docs state, shipping as package data, and every row used by a shipped study."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import yaml

from archsearch.errors import SpecError
from archsearch.published import UNITS, parse_rows, published, published_ids, published_rows

ROOT = Path(__file__).resolve().parents[1]
ROW = {"id": "r1", "paper": "xUnit (CVPR 2018)", "table": "Table 1", "setting": {"sigma": 25}, "value": 29.21,
       "unit": "dB", "approximate": False}


def test_rows_load_typed_and_unique():
    rows = published_rows()
    assert len(rows) == len(set(published_ids())) > 100
    assert all(r.unit in UNITS and isinstance(r.approximate, bool) for r in rows)
    assert all(r.paper.strip() for r in rows)
    # the papers reproduced so far; rows of a new paper need no edit here
    assert {r.paper for r in rows} >= {"xUnit (CVPR 2018)", "NSR (NeurIPS 2020)", "MemNet (ICCV 2017)"}


@pytest.mark.parametrize("row_id,value,unit", [
    ("xunit_t1_s25_dncnn_s", 29.22, "dB"), ("xunit_t1_s50_xdncnn", 26.26, "dB"), ("xunit_t1_xdncnn_params", 303,
                                                                                  "K params"),
    ("xunit_t3_x4_xsrcnn_f", 27.06, "dB"), ("xunit_t3_x4_xsrresnet", 27.61, "dB"), ("xunit_fig4_budget", 99136, "params"),
    ("nsr_t1_softmax_t1", 34.87, "dB"), ("nsr_t2_k4_b16", 34.68, "dB"), ("nsr_t3_k16_b2", 34.17, "dB"),
    ("nsr_t2_params_b16", 1.2, "M params"), ("nsr_fig5_size_k8", 0.56, "ms"), ("nsr_fig5_flops_k2", 2.12, "ms"),
    ("nsr_t5_s25_sparse_plus", 29.35, "dB"), ("memnet_t1_x3_ns", 34.00, "dB"), ("memnet_t6_m10r10", 34.23, "dB"),
    ("memnet_t6_m6r8_depth", 104, "layers"),
])
def test_values_as_printed(row_id, value, unit):
    row = published(row_id)
    assert (row.value, row.unit) == (value, unit)


def test_figure_values_marked_approximate():
    assert published("xunit_fig4_9x9_share").approximate and not published("xunit_t1_s25_bm3d").approximate


@pytest.mark.parametrize("change,path,message", [
    ({"unit": "decibel"}, "rows[0].unit", "must be one of dB"),
    ({"value": "29.2"}, "rows[0].value", "must be a number"),
    ({"value": float("nan")}, "rows[0].value", "finite"),
    ({"approximate": "no"}, "rows[0].approximate", "must be true or false"),
    ({"id": "a b"}, "rows[0].id", "must be a name"),
    ({"setting": {"sigma": [25]}}, "rows[0].setting.sigma", "must map a name to a number or a string"),
    ({"colour": "red"}, "rows[0].colour", "unknown key"),
    ({"paper": ""}, "rows[0].paper", "non-empty"),
])
def test_row_errors_name_file_and_key(change, path, message):
    with pytest.raises(SpecError) as err:
        parse_rows({"rows": [{**ROW, **change}]}, "published.yaml")
    assert err.value.path == path and err.value.file == "published.yaml" and message in err.value.message
    missing = {k: v for k, v in ROW.items() if k != "value"}
    with pytest.raises(SpecError, match="rows\\[0\\].value: is required"):
        parse_rows({"rows": [missing]}, "published.yaml")


def test_duplicate_ids_refused():
    with pytest.raises(SpecError) as err:
        parse_rows({"rows": [ROW, {**ROW, "value": 1.0}]}, "published.yaml")
    assert err.value.path == "rows[1].id" and "repeats the id 'r1'" in err.value.message


def test_unknown_id_did_you_mean():
    with pytest.raises(SpecError, match="did you mean 'xunit_t1_s25_xdncnn'"):
        published("xunit_t1_s25_xdncn")


def test_shipped_as_package_data():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "*.yaml" in cfg["tool"]["setuptools"]["package-data"]["archsearch.resources"]
    assert (ROOT / "archsearch" / "resources" / "__init__.py").exists()  # a package `packages.find` includes


def _referenced_ids(path: Path) -> set[str]:
    """Published ids a study file references, at the top level and in every profile."""
    data = yaml.safe_load(path.read_text()) or {}
    out: set[str] = set()
    for part in [data, *(data.get("profiles") or {}).values()]:
        out |= set((part.get("published") or {}).values())
        for c in part.get("claims") or []:
            out |= set(c.get("published") or [])
    return out


STUDIES = sorted((ROOT / "studies").glob("*.yaml"))


def _benchmark_ids() -> set[str]:
    """Row ids a benchmark prints beside its measurements (``published("id")`` or an f-string template such as
    ``nsr_fig5_{tag}_k{k}``, expanded against the known ids)."""
    import re

    out: set[str] = set()
    ids = set(published_ids())
    for path in (ROOT / "benchmarks").glob("*.py"):
        for lit in re.findall(r"published\(f?[\"']([^\"']+)[\"']\)", path.read_text()):
            pattern = re.compile(re.sub(r"\\\{[^}]*\\\}", "[A-Za-z0-9_]+", re.escape(lit)))
            out |= {i for i in ids if pattern.fullmatch(i)}
    return out


def test_every_published_row_is_used_by_a_shipped_study():
    """Every row is shown beside a measurement -- by a study (``published:`` or a claim) or a benchmark (NSR's
    Fig. 5 timings) -- or says why nothing carries it (``not_reproduced``)."""
    used = set().union(*(_referenced_ids(p) for p in STUDIES)) | _benchmark_ids()
    assert used <= set(published_ids())  # (load_study refuses unknown ids; this is the file-level view)
    assert {i for i in _benchmark_ids() if i.startswith("nsr_fig5_")} == {i for i in published_ids()
                                                                          if i.startswith("nsr_fig5_")}
    excused = {r.id for r in published_rows() if r.not_reproduced}
    assert not used & excused, f"rows marked not_reproduced are used: {sorted(used & excused)}"
    unused = sorted(set(published_ids()) - used - excused)
    assert not unused, f"{len(unused)} published rows no study references: {', '.join(unused)}"
