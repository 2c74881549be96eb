"""The console's signing key and operator token: made at first run, kept 0600, token hashed."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from connectors.accounts import hash_secret, verify_secret

KEY_FILE = "console.key"
OPERATOR_FILE = "console-operator.hash"


@dataclass(frozen=True, slots=True)
class ConsoleSecrets:
    signing_key: str  # signs session cookies; must stay usable in plain form
    operator_hash: str  # scrypt hash of the operator token
    new_operator_token: str | None = None  # set only on the run that made it (printed once)

    def verify_operator(self, token: str) -> bool:
        return verify_secret(self.operator_hash, token)


def _create(path: Path, text: str) -> bool:
    """Writes ``text`` to a new 0600 file; False when it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def ensure_console_secrets(data_dir: Path) -> ConsoleSecrets:
    """Reads the console's secrets under ``data_dir``, making them on the first run."""
    data_dir.mkdir(parents=True, exist_ok=True)
    key_path, operator_path = data_dir / KEY_FILE, data_dir / OPERATOR_FILE
    _create(key_path, secrets.token_urlsafe(32))
    token = "op_" + secrets.token_urlsafe(24)
    made = _create(operator_path, hash_secret(token))
    return ConsoleSecrets(
        key_path.read_text(encoding="utf-8").strip(),
        operator_path.read_text(encoding="utf-8").strip(),
        token if made else None,
    )
