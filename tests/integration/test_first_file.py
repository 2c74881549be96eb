"""What `tidegate run` prints for a first file works when pasted into a shell on a fresh machine."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.run_helpers import REPO, read_welcome, start_run, stop_run

pytestmark = pytest.mark.skipif(
    not all(Path(f"/usr/bin/{tool}").exists() for tool in ("sftp", "sshpass", "curl")),
    reason="needs OpenSSH sftp, sshpass and curl (scripts/setup installs them)",
)


def paste(lines: list[str], home: Path) -> str:
    """Types the lines into bash on a pseudo-terminal, as a user pasting them would."""
    master, slave = pty.openpty()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "dumb"}
    shell = subprocess.Popen(
        ["bash", "--norc", "--noprofile", "-i"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    os.write(master, ("\n".join([*lines, "exit"]) + "\n").encode())
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif shell.poll() is not None:
            break
    shell.wait(timeout=10)
    os.close(master)
    return output.decode("utf-8", "replace")


def test_the_printed_first_file_commands_work_when_pasted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    home = tmp_path / "home"  # a fresh machine: no ~/.ssh at all
    home.mkdir()
    proc = start_run(data, "--settle", "0.3", cwd=REPO)
    try:
        welcome = read_welcome(proc, 30, last="/events?wait=")
        block = welcome.split("Send a first file", 1)[1].splitlines()[1:]
        commands = [line.strip() for line in block if line.startswith("  ")]
        assert any("sftp" in c for c in commands) and any(c.startswith("curl") for c in commands)
        transcript = paste(commands, home)
        assert "Host key verification failed" not in transcript, transcript
        assert "Permission denied" not in transcript, transcript

        sample = re.search(r"put (\S+) events/", welcome)
        assert sample
        deadline = time.monotonic() + 20
        uploads: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            listed = subprocess.run(
                [sys.executable, "-m", "tidegate.cli", "uploads", "--data", str(data), "--json"],
                capture_output=True,
                text=True,
                check=False,
            )
            uploads = json.loads(listed.stdout or "[]")
            names = {
                u["filename"]: u for u in uploads if u["status"] not in ("queued", "processing")
            }
            if Path(sample[1]).name in names:
                break
            time.sleep(0.2)
        by_name = {u["filename"]: u for u in uploads}
        assert Path(sample[1]).name in by_name, transcript
        first = by_name[Path(sample[1]).name]
        assert first["status"] == "success", first
        assert first["counts"]["accepted"] == first["counts"]["records"] == 3  # type: ignore[index]
        answer = re.search(r'\{"status":"(\w+)".*?\}', transcript)
        assert answer and answer[1] == "accepted", transcript
    finally:
        stop_run(proc)
