"""Build hierarchical trees in a separate process:
``python -m apg.search.trees_worker IN DIR M...``.

fastcluster holds the GIL, so overlapping tree building with the rest of the search needs a
process. A plain subprocess (rather than multiprocessing) never re-imports the caller's
``__main__``, so it works from scripts and notebooks without a ``__main__`` guard.

The worker writes each tree to ``DIR/<method>.npz`` the moment it is built (write, then
rename, so a file that exists is complete): the search scores one tree's cuts while the
worker builds the next.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# How often the search looks for finished trees; a tree takes seconds, so this is noise.
POLL_SECONDS = 0.02
# Condensed distance matrices the tree workers may hold at the same moment. An exact tree
# needs one (fastcluster works in place on float64 pairs: 4 n^2 bytes); the search process
# itself peaks at ~450 MiB and a worker's interpreter holds 70 MiB, so 400 MiB of matrices
# keeps a default exact run (search.exact_max_rows: 10,000) under 1 GiB, measured with
# benchmarks/exact_vs_sample.py. Up to 7,200 rows two workers build trees side by side;
# above, one worker builds them one after another while the search fits K-Means and DBSCAN.
TREE_MEMORY_BYTES = 400 * 2**20


def condensed_bytes(n: int) -> int:
    """Bytes of the condensed distance matrix of ``n`` rows (float64 pairs)."""
    return n * (n - 1) // 2 * 8


def _condensed_gib(n: int) -> float:
    return condensed_bytes(n) / 2**30


def tree_processes(n: int, linkages: int, most: int) -> int:
    """Worker processes for ``linkages`` trees on ``n`` rows: at most ``most``, and no more
    than ``TREE_MEMORY_BYTES`` of condensed matrices at once (always at least one)."""
    fit = TREE_MEMORY_BYTES // max(1, condensed_bytes(n))
    return max(1, min(most, linkages, fit))


class TreeJob:
    """A running tree build; ``ready()`` returns the trees finished since the last call."""

    def __init__(self, X: np.ndarray, linkages: list[str]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="apg-trees-")
        self.folder = Path(self._dir.name)
        np.save(self.folder / "X.npy", X, allow_pickle=False)
        self.linkages = linkages
        self.n = len(X)
        self._pending = list(linkages)
        # stderr goes to a file: a pipe nobody reads while polling would block a chatty worker.
        self._stderr = open(self.folder / "stderr.txt", "wb")  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apg.search.trees_worker",
                str(self.folder / "X.npy"),
                str(self.folder),
                *linkages,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    @property
    def done(self) -> bool:
        return not self._pending

    def ready(self) -> list[tuple[str, np.ndarray, float]]:
        """(method, Z, seconds) of every tree finished and not yet returned."""
        out = []
        for method in list(self._pending):
            path = self.folder / f"{method}.npz"
            if not path.exists():
                continue
            with np.load(path, allow_pickle=False) as data:
                out.append((method, data["Z"], float(data["seconds"])))
            self._pending.remove(method)
        if not out and self._pending and self._proc.poll() is not None:
            self._fail()
        return out

    def _fail(self) -> None:
        # A tree may land between the poll above and the worker's exit: look once more.
        if any((self.folder / f"{m}.npz").exists() for m in self._pending):
            return
        code = self._proc.returncode
        if code < 0:
            # Killed: on Linux most often the kernel's OOM killer, since each worker holds
            # one condensed distance matrix of 4 n^2 bytes.
            from apg.errors import SearchError

            raise SearchError(
                f"the hierarchical tree worker was killed (signal {-code}), most likely out of "
                f"memory: each exact tree needs about {_condensed_gib(self.n):.1f} GiB at "
                f"{self.n:,} rows. Lower search.exact_max_rows (sample mode takes over above "
                "it) or drop linkages from search.agglomerative.linkage"
            )
        err = (self.folder / "stderr.txt").read_bytes().decode(errors="replace")
        raise RuntimeError(f"tree worker failed ({code}): {err[-500:]}")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._stderr.close()
        self._dir.cleanup()


class TreeJobs:
    """Trees split over ``processes`` workers (round robin over the linkages), each holding
    one condensed matrix at a time."""

    def __init__(self, X: np.ndarray, linkages: list[str], processes: int) -> None:
        groups = [linkages[i::processes] for i in range(processes)]
        self.jobs = [TreeJob(X, group) for group in groups if group]

    @property
    def busy(self) -> int:
        """Workers still building."""
        return sum(not job.done for job in self.jobs)

    def as_completed(self) -> Iterator[list[tuple[str, np.ndarray, float]]]:
        """Batches of (method, Z, seconds), each as soon as any tree is finished."""
        while not all(job.done for job in self.jobs):
            batch = [tree for job in self.jobs for tree in job.ready()]
            if batch:
                yield batch
            else:
                time.sleep(POLL_SECONDS)

    def result(self) -> tuple[dict[str, np.ndarray], float]:
        """Every tree, once all are built, and the build seconds summed over trees."""
        trees: dict[str, np.ndarray] = {}
        seconds = 0.0
        try:
            for batch in self.as_completed():
                for method, Z, took in batch:
                    trees[method] = Z
                    seconds += took
        finally:
            self.close()
        return trees, seconds

    def close(self) -> None:
        for job in self.jobs:
            job.close()


def main(argv: list[str]) -> None:
    from apg.search.kernels import linkage_matrices

    src, folder, *linkages = argv
    X = np.load(src, allow_pickle=False)
    for method in linkages:
        start = time.perf_counter()
        (Z,) = linkage_matrices(X, [method]).values()
        partial = Path(folder) / f"{method}.partial.npz"
        np.savez(partial, Z=Z, seconds=np.array(time.perf_counter() - start))
        os.replace(partial, Path(folder) / f"{method}.npz")


if __name__ == "__main__":
    main(sys.argv[1:])
