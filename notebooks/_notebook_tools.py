"""Shared helpers of the notebook generator scripts (``notebooks/_make_*_notebook.py``).

A generator lists its cells, then calls :func:`main`, which writes the notebook WITHOUT outputs
(so that it diffs cleanly) and, with ``--execute``, first runs it top to bottom with nbclient
(a smoke test; ``--budget small`` sets ``PUREJAXPG_NOTEBOOK_BUDGET=small`` as the tests do) and
reports the wall time and what the cells printed.

Notebook metadata ``purejaxpg.requires_algorithms`` lists the registry names a notebook trains;
``tests/test_notebooks.py`` skips a notebook whose algorithms cannot be loaded yet.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time
from collections.abc import Sequence

import nbformat
from nbformat.v4 import new_notebook

HERE = pathlib.Path(__file__).resolve().parent
BUDGET_ENV = "PUREJAXPG_NOTEBOOK_BUDGET"

#: first code cell of every notebook: find the package, read the budget
SETUP = '''import os
import pathlib
import sys

try:
    import purejaxpg  # noqa: F401
except ImportError:  # running from notebooks/ without the package installed
    sys.path.insert(0, str(pathlib.Path.cwd().parent))

# "small" (set by the tests) shrinks every budget to a smoke test; anything else runs the real one
SMALL = os.environ.get("PUREJAXPG_NOTEBOOK_BUDGET", "full") == "small"
print("budget:", "small (smoke test)" if SMALL else "full")'''


def build(cells: Sequence, requires_algorithms: Sequence[str] = ()) -> nbformat.NotebookNode:
    """A notebook of ``cells`` with deterministic cell ids and the python3 kernel."""
    nb = new_notebook(cells=list(cells))
    for i, cell in enumerate(nb.cells):  # deterministic ids, so regenerating diffs cleanly
        cell.id = f"cell-{i:02d}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["purejaxpg"] = {"requires_algorithms": list(requires_algorithms)}
    return nb


def clear_outputs(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)


def execute(nb: nbformat.NotebookNode, budget: str | None = None, timeout: int = 1800) -> float:
    """Run ``nb`` in place with nbclient (kernel python3, working folder notebooks/); returns seconds."""
    from nbclient import NotebookClient

    old = os.environ.get(BUDGET_ENV)
    if budget is not None:
        os.environ[BUDGET_ENV] = budget  # the kernel inherits the environment
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(HERE)}}).execute()
        return time.perf_counter() - start
    finally:
        if budget is not None:
            if old is None:
                os.environ.pop(BUDGET_ENV, None)
            else:
                os.environ[BUDGET_ENV] = old


def main(cells: Sequence, out: pathlib.Path, description: str, requires_algorithms: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--execute", action="store_true", help="run it once with nbclient")
    parser.add_argument("--budget", default=None, choices=("small", "full"), help="budget of the --execute run")
    args = parser.parse_args()
    nb = build(cells, requires_algorithms)
    if args.execute:
        seconds = execute(nb, args.budget)
        print(f"executed in {seconds:.1f} s")
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                if output.get("name") == "stdout":
                    print(output["text"], end="")
        clear_outputs(nb)
    nbformat.validate(nb)
    nbformat.write(nb, out)
    print(f"wrote {out}")
