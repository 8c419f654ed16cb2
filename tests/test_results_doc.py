"""docs/results.md is generated from benchmarks/results/*.json by benchmarks/make_results.py.

The committed file must be exactly what the script renders from the committed JSON, so that every
number in it comes from a measurement and none is edited by hand. No figure is rendered here.
"""

from __future__ import annotations

import difflib
import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIX = "run `python benchmarks/make_results.py` and commit docs/results.md and docs/figures/"


def _make_results():
    """benchmarks/make_results.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_results", ROOT / "benchmarks" / "make_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_doc_matches_the_json():
    expected = _make_results().render_markdown()
    committed = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    if committed != expected:
        diff = difflib.unified_diff(committed.splitlines(), expected.splitlines(), "docs/results.md (committed)",
                                    "docs/results.md (from the JSON)", lineterm="", n=1)
        pytest.fail(f"docs/results.md does not match benchmarks/results/*.json: {FIX}.\n"
                    + "\n".join(list(diff)[:40]), pytrace=False)


def test_results_doc_figures_exist():
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    missing = [f for f in re.findall(r"\]\((figures/[^)]+)\)", text) if not (ROOT / "docs" / f).is_file()]
    assert not missing, f"docs/results.md links figures that do not exist: {missing}; {FIX}."
