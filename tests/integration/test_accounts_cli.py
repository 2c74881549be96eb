"""`tidegate accounts` beside a running `tidegate run`: every change served within 2 s, no restart."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import paramiko

from tests.integration.test_run_end_to_end import Running, _events, running  # noqa: F401

LIMIT = 2.0


def accounts(data: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tidegate.cli", "accounts", "--data", str(data), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def sftp_login(r: Running, user: str, password: str) -> bool:
    transport = paramiko.Transport(("127.0.0.1", r.sftp_port))
    try:
        transport.connect(username=user, password=password)
        return True
    except paramiko.AuthenticationException:
        return False
    finally:
        transport.close()


def api_ok(r: Running, key: str) -> bool:
    response = httpx.get(
        f"http://127.0.0.1:{r.http_port}/uploads",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def within(limit: float, check: Callable[[], bool]) -> float:
    """Seconds until `check()` holds; fails after `limit`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit, f"not within {limit} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_an_account_added_rotated_and_removed_while_run_is_up(running: Running) -> None:  # noqa: F811
    data = running.data
    out = accounts(data, "add", "acme")
    password = re.search(r"SFTP user acme\s+password (\S+)", out)
    key = re.search(r"Bearer \.\.\.\)\s+(\S+)", out)
    assert password and key, out
    assert stat.S_IMODE((data / "accounts.toml").stat().st_mode) == 0o600
    assert password[1] not in (data / "accounts.toml").read_text()  # only hashes are kept

    within(LIMIT, lambda: api_ok(running, key[1]))
    within(LIMIT, lambda: sftp_login(running, "acme", password[1]))

    new_key = re.search(r"shown ONCE\): (\S+)", accounts(data, "rotate", "acme", "api_key"))
    assert new_key
    within(LIMIT, lambda: not api_ok(running, key[1]))
    assert api_ok(running, new_key[1])

    accounts(data, "remove", "acme")
    within(LIMIT, lambda: not api_ok(running, new_key[1]))
    within(LIMIT, lambda: not sftp_login(running, "acme", password[1]))
    assert "acme" not in accounts(data, "list")
    assert sftp_login(running, running.user, running.password)  # the others are unharmed


def test_a_setting_changed_while_run_is_up_applies_to_the_next_upload(
    running: Running,  # noqa: F811
) -> None:
    data = running.data
    accounts(data, "set", "demo", "trigger_imports=true")
    shown = accounts(data, "--json", "show", "demo")
    assert '"trigger_imports": true' in shown
    time.sleep(1.0)  # the file is polled every 0.5 s
    body = _events(1, "later")
    transport = paramiko.Transport(("127.0.0.1", running.sftp_port))
    transport.connect(username=running.user, password=running.password)
    client = paramiko.SFTPClient.from_transport(transport)
    assert client is not None
    with client.open("events/later.jsonl", "wb") as handle:
        handle.write(body)
    client.close()
    transport.close()
    triggers = data / "out" / "triggers.jsonl"
    within(10, lambda: triggers.exists() and b"later-0" in triggers.read_bytes())


def test_add_account_takes_a_str_path(tmp_path: Path) -> None:
    from connectors.accounts import add_account, load_accounts

    creds = add_account(str(tmp_path / "accounts.toml"), "acme")  # type: ignore[arg-type]
    assert load_accounts(tmp_path / "accounts.toml").verify_api_key("acme", creds.api_key)
