"""docs/api.md is generated from the docstrings by docs/_make_api.py and must be in sync with them."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_api_doc_is_in_sync_with_the_docstrings():
    spec = importlib.util.spec_from_file_location("make_api", ROOT / "docs" / "_make_api.py")
    make_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_api)
    assert (ROOT / "docs" / "api.md").read_text() == make_api.render(), \
        "docs/api.md is out of date: run python docs/_make_api.py"
