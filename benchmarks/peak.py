"""Peak memory of a whole process tree: the run and its workers together, sampled.

``ru_maxrss`` gives one process's peak (or the largest child's), not what the run and its
tree workers hold at the same moment, which is what has to fit on a laptop. This samples the
summed RSS of a command's process tree every ``interval`` seconds.
"""

from __future__ import annotations

import contextlib
import subprocess
import time

import psutil


def tree_rss(proc: psutil.Process) -> int:
    """Bytes resident in ``proc`` and all its descendants now (0 for those gone)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # exited between listing and reading
            total += p.memory_info().rss
    return total


def run_sampled(cmd: list[str], interval: float = 0.05) -> tuple[str, float]:
    """Run ``cmd``; its stdout and the peak summed RSS of its process tree in MiB."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as child:
        proc = psutil.Process(child.pid)
        peak = 0
        # stdout is read at the end: the children print one JSON line, far below a pipe's buffer.
        while child.poll() is None:
            try:
                peak = max(peak, tree_rss(proc))
            except psutil.Error:
                break
            time.sleep(interval)
        out = child.stdout.read() if child.stdout else ""
        if child.wait() != 0:
            raise subprocess.CalledProcessError(child.returncode, cmd, out)
    return out, peak / 2**20
