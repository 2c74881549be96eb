"""Settings as a user gives them to `tidegate`: flag, environment, config file; bad ones refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TIDEGATE = Path(sys.executable).parent / "tidegate"


def _environ(**extra: str) -> dict[str, str]:
    """This process's environment without any TIDEGATE_* variable (a CI's would leak in)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIDEGATE_")}
    return clean | extra


def _tidegate(
    *argv: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TIDEGATE), *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env if env is not None else _environ(),
        check=False,
        timeout=120,
    )


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tidegate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _assert_refused(proc: subprocess.CompletedProcess[str], line: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr == f"tidegate: {line}\n"  # one line, no traceback, no usage
    assert proc.stdout == ""


@pytest.mark.parametrize("source", ["flag", "environment", "config file"])
def test_a_bad_port_stops_run_naming_the_setting_value_and_source(
    tmp_path: Path, source: str
) -> None:
    data = tmp_path / "data"
    argv = ["run", "--data", str(data), "--sftp-port", "0", "--ftp-port", "-1"]
    env = _environ()
    if source == "flag":
        argv += ["--http-port", "http"]
        origin = "the flag --http-port"
    elif source == "environment":
        env["TIDEGATE_HTTP_PORT"] = "http"
        origin = "the environment variable TIDEGATE_HTTP_PORT"
    else:
        config = _config(tmp_path, 'http_port = "http"\n')
        argv = ["--config", str(config), *argv]
        origin = f"http_port in {config}"
    proc = _tidegate(*argv, cwd=tmp_path, env=env)
    _assert_refused(proc, f"TIDEGATE_HTTP_PORT='http': not a whole number (from {origin})")
    assert not data.exists()  # refused before anything was started or created


def test_an_unknown_config_key_is_refused_naming_it(tmp_path: Path) -> None:
    config = _config(tmp_path, "sftp_port = 0\nhtp_port = 8080\n")
    proc = _tidegate(
        "run",
        "--data",
        str(tmp_path / "data"),
        cwd=tmp_path,
        env=_environ(TIDEGATE_CONFIG=str(config)),
    )
    _assert_refused(
        proc, f"config file {config}: unknown key 'htp_port' (did you mean 'http_port'?)"
    )


def test_a_config_value_of_the_wrong_type_is_refused_naming_key_and_value(tmp_path: Path) -> None:
    config = _config(tmp_path, "drain_seconds = [10]\n")
    proc = _tidegate("--config", str(config), "uploads", cwd=tmp_path)
    _assert_refused(
        proc,
        f"config file {config}: key 'drain_seconds' = [10]: a list is not a setting value"
        " (a string, a number or true/false)",
    )


def test_a_flag_beats_the_environment_which_beats_the_config_file(tmp_path: Path) -> None:
    for name in ("flag", "env", "file"):
        (tmp_path / name).mkdir()
    config = _config(tmp_path, f'data = "{tmp_path / "file"}"\n')

    def data_of(*flags: str, **env: str) -> str:
        proc = _tidegate(
            "--config", str(config), "doctor", "--json", *flags, cwd=tmp_path, env=_environ(**env)
        )
        assert proc.returncode in (0, 1), proc.stderr
        return str(json.loads(proc.stdout)["data"])

    env_data = str(tmp_path / "env")
    assert data_of("--data", str(tmp_path / "flag"), TIDEGATE_DATA=env_data) == str(
        tmp_path / "flag"
    )
    assert data_of(TIDEGATE_DATA=env_data) == env_data
    assert data_of() == str(tmp_path / "file")


def test_run_serves_with_the_settings_of_its_config_file(tmp_path: Path) -> None:
    data = tmp_path / "from-file"
    config = _config(
        tmp_path,
        "# tidegate run's settings\n"
        f'data = "{data}"\n'
        'host = "127.0.0.1"\n'
        "sftp_port = 0\n"
        "http_port = 0\n"
        "ftp_port = -1\n"
        "settle_seconds = 0.2\n",
    )
    proc = subprocess.Popen(
        [str(TIDEGATE), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
        env=_environ(TIDEGATE_CONFIG=str(config)),
    )
    try:
        assert proc.stdout is not None
        welcome: list[str] = []
        for line in proc.stdout:
            welcome.append(line)
            if "web console" in line:
                break
        text = "".join(welcome)
        assert f"data directory   {data.resolve()}" in text, text
        assert "  FTP drop" not in text, text  # ftp_port = -1 in the file: off
        assert (data / "accounts.toml").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
