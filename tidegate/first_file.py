"""The first-file commands `tidegate run` prints: they work when pasted on a fresh machine."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh
import orjson

SAMPLE_EVENTS: tuple[tuple[str, str, list[dict[str, object]]], ...] = (
    ("1234", "purchased", [{"item_name": "Shoes", "price": 123.99}]),
    ("1235", "purchased", [{"item_name": "Pants", "price": 34.99}]),
    ("1236", "viewed", []),
)


def write_sample(data: Path, now: datetime | None = None) -> Path:
    """A small Zeta JSON-lines file whose timestamps are minutes before `now` (so the time
    window accepts them), under a name no earlier run used (names are unique per account)."""
    now = now or datetime.now(UTC)
    directory = data / "samples"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"first-events-{now:%Y%m%d-%H%M%S}.jsonl"
    lines = [
        orjson.dumps(
            {
                "user_id": user,
                "event_type": kind,
                "timestamp": (now - timedelta(minutes=5 - i)).strftime("%Y-%m-%dT%H:%M:%S"),
                "shopping_cart_items": items,
            }
        )
        for i, (user, kind, items) in enumerate(SAMPLE_EVENTS)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def host_key_line(key_path: Path, host: str, port: int) -> tuple[str, str]:
    """(known_hosts line, SHA256 fingerprint) of the SFTP server's host key."""
    key = asyncssh.read_private_key(key_path)
    public = key.export_public_key("openssh").decode().split()
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {public[0]} {public[1]}", key.get_fingerprint("sha256")


def first_file_lines(
    *,
    data: Path,
    host: str,
    sftp_port: int,
    http_port: int,
    username: str,
    password: str,
    api_key: str,
) -> list[str]:
    """Shell lines to paste: pin the host key, send the sample over SFTP (sshpass gives the
    password; OpenSSH sftp reads it only from a terminal), or send an event with curl."""
    sample = write_sample(data).resolve()
    known, fingerprint = host_key_line(data / "ssh_host_ed25519_key", host, sftp_port)
    # The pinned host key in a file of its own: the command works as pasted on a machine
    # that never saw this server, without touching ~/.ssh (OpenSSH reads the home of the
    # passwd entry, not $HOME), and no "accept any key" option is needed.
    known_hosts = (data / "known_hosts").resolve()
    known_hosts.write_text(known + "\n", encoding="utf-8")
    q = shlex.quote
    return [
        f"Send a first file (paste these lines; the host key is {fingerprint}):",
        f"  echo {q('put ' + str(sample) + ' events/')} | sshpass -p {q(password)} "
        f"sftp -o UserKnownHostsFile={q(str(known_hosts))} -P {sftp_port} "
        f"{q(username + '@' + host)}",
        f"  .venv/bin/tidegate uploads --data {q(str(data))}",
        "  # sshpass: apt-get install sshpass; without it, run sftp alone and type the password",
        f"  # to trust the host key for every ssh/sftp: cat {q(str(known_hosts))} >> ~/.ssh/known_hosts",
        "  # Or send one event over the HTTP API and wait for its outcome:",
        f"  curl -sS -H {q('Authorization: Bearer ' + api_key)} -H 'content-type: application/json'"
        f' -d \'{{"name": "first event"}}\' '
        f"'http://{host}:{http_port}/people/contacts/first-user/events?wait=10'",
    ]
