"""`tidegate run` as a subprocess for the integration tests, and what its welcome says."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
RUN = (sys.executable, "-m", "tidegate.cli", "run")
# every listener on a port the system picks: tests run beside other checkouts and tests
EPHEMERAL_PORTS = ("--sftp-port", "0", "--ftp-port", "0", "--http-port", "0")
WELCOME_END = "tidegate uploads"  # the welcome's last line when a demo account is made


def start_run(
    data: Path, *extra: str, stderr: int | IO[Any] = subprocess.DEVNULL, **popen: Any
) -> subprocess.Popen[str]:
    """`tidegate run --data DATA` on free ports; `extra` flags come last, so they win."""
    return subprocess.Popen(
        [*RUN, "--data", str(data), *EPHEMERAL_PORTS, *extra],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        **popen,
    )


def read_welcome(proc: subprocess.Popen[str], timeout: float = 60, last: str = WELCOME_END) -> str:
    """The welcome `tidegate run` prints, up to the line holding `last`; fails after
    `timeout` seconds also when the process prints nothing at all (a thread reads, so a
    silent process cannot block the test until pytest's own timeout)."""
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: list[str] = []
    finished = threading.Event()

    def read() -> None:
        # reads to the end: a pipe nobody empties would stall the server once it is full
        for line in stdout:
            if not finished.is_set():
                lines.append(line)
                if last in line:
                    finished.set()
        finished.set()  # the end of the output: the process exited before `last`

    threading.Thread(target=read, daemon=True).start()
    finished.wait(timeout)
    text = "".join(lines)
    if finished.is_set() and last in text:
        return text
    raise AssertionError(f"tidegate run did not start (no {last!r} within {timeout:g} s):\n{text}")


def welcome_value(text: str, pattern: str) -> str:
    """The first group of `pattern` in the welcome; fails naming what is missing."""
    found = re.search(pattern, text)
    assert found, f"{pattern!r} is not in the welcome:\n{text}"
    return found[1]


def http_port(text: str) -> int:
    return int(welcome_value(text, r"http://127\.0\.0\.1:(\d+)/"))


def sftp_port(text: str) -> int:
    return int(welcome_value(text, r"sftp -P (\d+)"))


def ftp_port(text: str) -> int:
    return int(welcome_value(text, r"ftp://127\.0\.0\.1:(\d+)/"))


def passcode(text: str) -> str:
    return welcome_value(text, r"X-CleverTap-Passcode (\S+)")


def api_key(text: str) -> str:
    return welcome_value(text, r"API key \(Authorization: Bearer \.\.\.\)\s+(\S+)")


def sftp_login(text: str) -> tuple[str, str]:
    found = re.search(r"SFTP user (\S+)\s+password (\S+)", text)
    assert found, f"no SFTP login in the welcome:\n{text}"
    return found[1], found[2]


def stop_run(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL when the drain takes longer than `timeout`."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
