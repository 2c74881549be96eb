"""Decompression bombs of 1 GiB are refused in bounded memory (peak RSS < 300 MB).

Each scenario runs in a subprocess and reports its own `ru_maxrss`. On Linux a child's
`ru_maxrss` starts at the RSS of the process it was spawned from (the kernel carries the
high-water mark of the pre-exec memory over), so the scenario is started through a tiny
launcher process: the grandchild's figure is then its own peak, not pytest's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .bombs import gzip_bomb, zip_bomb

pytestmark = pytest.mark.slow

GiB = 1 << 30
MAX_RSS_KIB = 300 * 1000  # 300 MB
REPO = Path(__file__).resolve().parents[3]
CHILD = Path(__file__).with_name("bomb_child.py")
LAUNCHER = (
    "import subprocess, sys; "
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stdout.write(done.stdout); sys.stderr.write(done.stderr); sys.exit(done.returncode)"
)


def run_child(mode: str, path: Path) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, sys.executable, str(CHILD), mode, str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, object] = json.loads(done.stdout)
    print(f"{mode} {path.name}: peak RSS {int(outcome['maxrss_kib']) / 1024:.0f} MiB")  # type: ignore[call-overload]
    return outcome


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bombs")
    made = {
        "gzip": root / "bomb.jsonl.gz",
        "zip": root / "bomb.zip",
        "liar": root / "liar.zip",
    }
    assert gzip_bomb(made["gzip"], GiB) > GiB - (1 << 20)
    zip_bomb(made["zip"], GiB)
    zip_bomb(made["liar"], GiB, declared_size=1000)
    return made


@pytest.mark.parametrize("mode", ["scan", "open", "upload"])
def test_gzip_bomb_is_refused_in_bounded_memory(bombs: dict[str, Path], mode: str) -> None:
    outcome = run_child(mode, bombs["gzip"])
    assert outcome["code"] == "unsafe_archive", outcome
    assert "bomb.jsonl" in str(outcome["message"])
    assert int(outcome["maxrss_kib"]) < MAX_RSS_KIB, outcome  # type: ignore[call-overload]


@pytest.mark.parametrize("mode", ["scan", "open", "upload"])
def test_zip_bomb_is_refused_in_bounded_memory(bombs: dict[str, Path], mode: str) -> None:
    outcome = run_child(mode, bombs["zip"])
    assert outcome["code"] == "unsafe_archive", outcome
    assert "bomb.jsonl" in str(outcome["message"])
    assert int(outcome["maxrss_kib"]) < MAX_RSS_KIB, outcome  # type: ignore[call-overload]


@pytest.mark.parametrize("mode", ["scan", "upload"])
def test_zip_bomb_with_lying_sizes_stays_bounded(bombs: dict[str, Path], mode: str) -> None:
    outcome = run_child(mode, bombs["liar"])
    # The header says 1000 bytes: nothing past them is ever produced, so the member is
    # corrupt (its CRC cannot match) rather than a bomb, and it fails alone.
    assert outcome["code"] is None, outcome
    assert outcome["member_errors"] == ["unsupported_format"], outcome
    assert int(outcome["maxrss_kib"]) < MAX_RSS_KIB, outcome  # type: ignore[call-overload]
