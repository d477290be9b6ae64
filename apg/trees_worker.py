"""Build hierarchical trees in a separate process: ``python -m apg.trees_worker IN OUT M...``.

fastcluster holds the GIL, so overlapping tree building with the rest of the search needs a
process. A plain subprocess (rather than multiprocessing) never re-imports the caller's
``__main__``, so it works from scripts and notebooks without a ``__main__`` guard.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


class TreeJob:
    """A running tree build; ``result()`` waits for it and returns (trees, seconds)."""

    def __init__(self, X: np.ndarray, linkages: list[str]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="apg-trees-")
        folder = Path(self._dir.name)
        np.save(folder / "X.npy", X, allow_pickle=False)
        self._out = folder / "trees.npz"
        self._linkages = linkages
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apg.trees_worker",
                str(folder / "X.npy"),
                str(self._out),
                *linkages,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def result(self) -> tuple[dict[str, np.ndarray], float]:
        try:
            _, err = self._proc.communicate()
            if self._proc.returncode != 0:
                raise RuntimeError(
                    f"tree worker failed ({self._proc.returncode}): {err.decode()[-500:]}"
                )
            with np.load(self._out, allow_pickle=False) as data:
                trees = {m: data[m] for m in self._linkages}
                seconds = float(data["__seconds__"])
            return trees, seconds
        finally:
            self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._dir.cleanup()


class TreeJobs:
    """Trees split over ``processes`` workers (round robin over the linkages), each holding
    one condensed matrix at a time; ``result()`` merges them."""

    def __init__(self, X: np.ndarray, linkages: list[str], processes: int) -> None:
        groups = [linkages[i::processes] for i in range(processes)]
        self.jobs = [TreeJob(X, group) for group in groups if group]

    def result(self) -> tuple[dict[str, np.ndarray], float]:
        trees: dict[str, np.ndarray] = {}
        seconds = 0.0
        try:
            for job in self.jobs:
                built, took = job.result()
                trees.update(built)
                seconds += took
        finally:
            self.close()
        return trees, seconds

    def close(self) -> None:
        for job in self.jobs:
            job.close()


def main(argv: list[str]) -> None:
    from apg.kernels import linkage_matrices

    src, out, *linkages = argv
    X = np.load(src, allow_pickle=False)
    start = time.perf_counter()
    trees = linkage_matrices(X, linkages)
    np.savez(out, __seconds__=np.array(time.perf_counter() - start), **trees)


if __name__ == "__main__":
    main(sys.argv[1:])
