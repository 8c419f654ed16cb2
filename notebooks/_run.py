"""Execute notebooks from their jupytext sources and save the paired ``.ipynb`` with outputs.

The ``.py`` files here (jupytext "percent" scripts) are the sources: edit them, diff them. Each
is paired with an ``.ipynb`` stored WITH its outputs, so that the plots show when browsing the
repository. After editing a source, regenerate its notebook at the full budget:

    python notebooks/_run.py quickstart            # one notebook (name without extension)
    python notebooks/_run.py                       # all of them
    python notebooks/_run.py quickstart --budget small   # a smoke test, nothing written

The tests (``tests/test_notebooks.py``) run every source on the small budget
(``PUREJAXPG_NOTEBOOK_BUDGET=small``) and check that each ``.ipynb`` matches its source and
carries its outputs. Notebook metadata ``purejaxpg.requires_algorithms`` lists the registry names
a notebook trains.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import time

import jupytext
import nbformat

HERE = pathlib.Path(__file__).resolve().parent
BUDGET_ENV = "PUREJAXPG_NOTEBOOK_BUDGET"


def sources() -> list[pathlib.Path]:
    """The notebooks' jupytext sources (``notebooks/*.py`` not starting with an underscore)."""
    return sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_"))


def execute(nb: nbformat.NotebookNode, budget: str, timeout: int = 3600) -> float:
    """Run ``nb`` in place with nbclient (kernel python3, working folder notebooks/); returns seconds."""
    from nbclient import NotebookClient

    old = os.environ.get(BUDGET_ENV)
    os.environ[BUDGET_ENV] = budget  # the kernel inherits the environment
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(HERE)}}).execute()
        return time.perf_counter() - start
    finally:
        if old is None:
            os.environ.pop(BUDGET_ENV, None)
        else:
            os.environ[BUDGET_ENV] = old


#: machine-specific text that must not be stored in outputs (home and work folders, temp paths)
MACHINE_PATH = re.compile(r"(/root/|/home/[^/\s]+/|/tmp/|/work/|[A-Z]:\\\\Users\\\\)")


def scrub(nb: nbformat.NotebookNode) -> None:
    """Drop execution timing metadata and replace machine paths in text outputs with '...'."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = MACHINE_PATH.sub(".../", out["text"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (default: all)")
    parser.add_argument("--budget", default="full", choices=("small", "full"),
                        help="full (default) writes the .ipynb with its outputs; small only checks that it runs")
    args = parser.parse_args()
    paths = [HERE / f"{name}.py" for name in args.names] if args.names else sources()
    for path in paths:
        nb = jupytext.read(path)
        seconds = execute(nb, args.budget)
        print(f"{path.stem}: executed in {seconds:.0f} s ({args.budget} budget)", flush=True)
        if args.budget == "full":
            scrub(nb)
            jupytext.write(nb, path.with_suffix(".ipynb"))
            print(f"wrote {path.with_suffix('.ipynb')}", flush=True)


if __name__ == "__main__":
    main()
