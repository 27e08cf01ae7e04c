#!/usr/bin/env python3
"""The notebooks as a student meets them: real Jupyter (nbclient) driving the evcxr_jupyter kernel.

Usage: bench_jupyter.py [NOTEBOOK ...]     (default: labs/01_kto_loss.ipynb labs/02_prospect_theory.ipynb)

Runs each notebook top to bottom in a fresh kernel, one after the other, the way Jupyter runs
it (kernel started in the notebook's folder, so the folder's evcxr.toml applies), then restarts
the last notebook's kernel and runs its first cell again. Prints, per run: the kernel's start,
the first cell (the `:dep` cell that loads the library), the median and slowest of the other
cells, the whole notebook, and whether any cell raised an error. Exit 1 on an error cell.

Needs: `pip install nbclient nbformat ipykernel` and the kernel (`cargo install evcxr_jupyter
--locked && evcxr_jupyter --install`). Nothing is written: outputs stay in memory.
"""

import statistics
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ["labs/01_kto_loss.ipynb", "labs/02_prospect_theory.ipynb"]


def errors_of(cell):
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def run(path, only_first=False, label=None):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="rust", timeout=900,
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.monotonic()
    times, failed = [], []
    with client.setup_kernel():
        kernel_start = time.monotonic() - started
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t = time.monotonic()
            client.execute_cell(cell, index)
            times.append(time.monotonic() - t)
            if errors_of(cell):
                e = errors_of(cell)[0]
                failed.append(f"cells[{index}] {e.get('ename', '')}: {e.get('evalue', '')[:200]}")
            if only_first:
                break
    whole = time.monotonic() - started
    rest = times[1:]
    line = (f"{label or path.relative_to(ROOT)}: kernel start {kernel_start:.1f} s, "
            f"first cell {times[0]:.1f} s")
    if rest:
        line += (f", other {len(rest)} cells median {statistics.median(rest):.2f} s "
                 f"(slowest {max(rest):.1f} s)")
    line += f", whole {whole:.1f} s, error cells: {len(failed)}"
    print(line, flush=True)
    for f in failed:
        print(f"  {f}", flush=True)
    return not failed


def main():
    paths = [ROOT / p if not Path(p).is_absolute() else Path(p) for p in (sys.argv[1:] or DEFAULT)]
    ok = True
    for p in paths:
        ok &= run(p)
    ok &= run(paths[-1], only_first=True,
              label=f"{paths[-1].relative_to(ROOT)} after a kernel restart")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
