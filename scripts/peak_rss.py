#!/usr/bin/env python3
"""Runs a benchmark's command and measures its own peak RSS, not one inherited from the benchmark.

Linux keeps a process's RSS high-water mark across exec, and a child spawned by
subprocess (vfork, then exec) starts with its parent's: a benchmark holding its data in
memory would inflate every peak it measures. A small launcher process (this file, run as
a script) forks the command from its own few megabytes and reports the command's peak.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO


def run(cmd: Sequence[str], stdout: IO[bytes] | None = None) -> tuple[int, float, float]:
    """Runs `cmd` (its stdout to `stdout`); returns its exit code, seconds and peak RSS in MiB."""
    read, write = os.pipe()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), str(write), *cmd],
        stdout=stdout,
        pass_fds=(write,),
    )
    os.close(write)
    with os.fdopen(read) as report:
        peak_kib = report.read().strip()
    code = proc.wait()
    elapsed = time.perf_counter() - start
    if not peak_kib:
        raise RuntimeError(f"the launcher of {cmd[0]} reported no peak (exit {code})")
    return code, elapsed, int(peak_kib) / 1024


def _launch(report_fd: int, cmd: list[str]) -> int:
    pid = os.fork()
    if pid == 0:  # the command, forked from this small process
        os.close(report_fd)
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with os.fdopen(report_fd, "w") as report:
        report.write(str(usage.ru_maxrss))
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(_launch(int(sys.argv[1]), sys.argv[2:]))
