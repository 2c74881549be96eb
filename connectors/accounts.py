"""Accounts and their credentials, from a TOML file (``DATA/accounts.toml`` by default).

One table per account; the table key is the account name (also the name of the
account's folder in the SFTP drop and the watched folder)::

    [accounts.acme]
    username = "acme"                 # SFTP login (unique across accounts)
    password = "scrypt$16384$8$1$<salt b64>$<hash b64>"   # SFTP password, hashed
    api_key = "scrypt$..."            # HTTP API key, hashed
    passcode = "scrypt$..."           # CleverTap-style X-CleverTap-Passcode, hashed
    clevertap_account_id = "acme"     # X-CleverTap-Account-Id (default: the name)
    authorized_keys = ["ssh-ed25519 AAAA... laptop"]   # SFTP public keys (optional)
    trigger_imports = false           # file imports trigger campaigns by default?
    dedup_fingerprint = false         # content-fingerprint dedup for keyless records
    # optional rule settings, passed to the core as they are:
    # max_event_types = 512, max_properties = 256, dedup_window_seconds = 86400
    # dialect = "zeta"                # fixes the dialect of this account's file drops

Secrets are never stored in plain text: every secret field must be a
``scrypt$n$r$p$salt$hash`` string (standard base64, per-secret random salt). A
plain-text value is a configuration error, so a typo cannot silently create an account
whose password is the literal hash field. Each secret is optional; an account without
one cannot use that way in (an account with neither password nor keys cannot log in
over SFTP at all).

Plain-text credentials exist only at creation (`ensure_demo_account`, `add_account`),
are random (`secrets.token_urlsafe`), and are returned once for the caller to print.
The file is written with mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.atomic_file import create_file, replace_file
from streams.core.csvmap import CsvMapping, parse_mapping
from streams.core.errors import Rejection

__all__ = [
    "Account",
    "Accounts",
    "AccountsConfigError",
    "Credentials",
    "add_account",
    "ensure_demo_account",
    "hash_secret",
    "load_accounts",
    "remove_account",
    "rotate_credential",
    "set_account",
    "verify_secret",
]

# scrypt cost: n=2**14, r=8, p=1 uses 16 MiB and ~50 ms per verification. Stored
# parameters are honoured up to the limits below (a hostile file cannot make a login
# allocate gigabytes).
SCRYPT_N = 1 << 14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
SALT_BYTES = 16
_MAX_N = 1 << 20
_MAX_R = 32
_MAX_P = 16
_MAX_MEM = 1 << 30

ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
DEMO_ACCOUNT = "demo"
_SECRET_FIELDS = ("password", "api_key", "passcode")
#: An account's S3 source (docs/S3.md); its secret key is never in the accounts file.
S3_KEYS = tuple(f"s3_{k}" for k in ("bucket", "prefix", "region", "endpoint_url", "access_key_id"))
_KNOWN_KEYS = frozenset(
    {
        "csv_mapping",
        "username",
        "password",
        "api_key",
        "passcode",
        "clevertap_account_id",
        "authorized_keys",
        "trigger_imports",
        "dedup_fingerprint",
        "dialect",
        "max_event_types",
        "max_properties",
        "dedup_window_seconds",
        *S3_KEYS,
        "notify_emails",
        "webhooks",
    }
)
_SETTING_KEYS = ("max_event_types", "max_properties", "dedup_window_seconds")
_LIST_KEYS = ("notify_emails", "webhooks")  # notification targets (docs/NOTIFICATIONS.md)
_DIALECTS = frozenset({"zeta", "vero", "kissmetrics", "naxai", "clevertap", "canonical"})
_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


class AccountsConfigError(ValueError):
    """The accounts file cannot be used; the message names the file and the account."""


# ---------------------------------------------------------------------------- hashing


def hash_secret(plaintext: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt_b64$hash_b64`` for a plain-text secret, with a fresh salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(plaintext.encode("utf-8"), salt, n, r, p, SCRYPT_DKLEN)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


@dataclass(frozen=True, slots=True)
class _Hash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _scrypt(secret: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEM, dklen=dklen)


def _parse_hash(encoded: str) -> _Hash:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a scrypt$n$r$p$salt$hash string")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except ValueError as exc:
        raise ValueError(f"malformed scrypt hash: {exc}") from None
    if n < 2 or n & (n - 1) or n > _MAX_N:
        raise ValueError(f"scrypt n must be a power of two between 2 and {_MAX_N}")
    if not 1 <= r <= _MAX_R or not 1 <= p <= _MAX_P:
        raise ValueError("scrypt r or p out of range")
    if len(salt) < 8 or not 16 <= len(digest) <= 64:
        raise ValueError("scrypt salt or hash has the wrong length")
    return _Hash(n, r, p, salt, digest)


def verify_secret(encoded: str | None, plaintext: str) -> bool:
    """Whether `plaintext` matches the stored hash; constant time in the comparison.

    With no stored hash, a dummy hash is still computed so that the time taken does not
    tell whether the secret exists.
    """
    if encoded is None:
        _dummy_verify(plaintext)
        return False
    parsed = _parse_hash(encoded)
    candidate = _scrypt(
        plaintext.encode("utf-8", "surrogatepass"),
        parsed.salt,
        parsed.n,
        parsed.r,
        parsed.p,
        len(parsed.digest),
    )
    return hmac.compare_digest(candidate, parsed.digest)


_DUMMY_SALT = secrets.token_bytes(SALT_BYTES)


def _dummy_verify(plaintext: str) -> None:
    _scrypt(
        plaintext.encode("utf-8", "surrogatepass"),
        _DUMMY_SALT,
        SCRYPT_N,
        SCRYPT_R,
        SCRYPT_P,
        SCRYPT_DKLEN,
    )


# ---------------------------------------------------------------------------- accounts


@dataclass(frozen=True, slots=True)
class Account:
    """One tenant: its name, login, hashed secrets and per-account settings."""

    name: str
    username: str
    password_hash: str | None = field(default=None, repr=False)
    api_key_hash: str | None = field(default=None, repr=False)
    passcode_hash: str | None = field(default=None, repr=False)
    clevertap_account_id: str = ""
    authorized_keys: tuple[str, ...] = ()
    trigger_imports: bool = False
    dedup_fingerprint: bool = False
    dialect: str | None = None
    extra_settings: Mapping[str, Any] = field(default_factory=dict)
    csv_mapping: CsvMapping | None = None  # default column mapping of its CSV uploads
    # S3 import source (docs/S3.md): bucket, prefix, region, endpoint_url, access_key_id
    s3: Mapping[str, str] = field(default_factory=dict)
    # where the end of each upload is told (docs/NOTIFICATIONS.md); webhook secrets are
    # kept apart, in DATA/webhook_secrets.json
    notify_emails: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()

    def settings_mapping(self) -> dict[str, Any]:
        """The rule settings, in the form `AccountSettings.from_mapping` reads."""
        return {
            "trigger_imports": self.trigger_imports,
            "dedup_fingerprint": self.dedup_fingerprint,
            **dict(self.extra_settings),
        }


@dataclass(frozen=True, slots=True)
class Credentials:
    """Plain-text credentials of a new account: shown once, never stored."""

    account: str
    username: str
    password: str = field(repr=False)
    api_key: str = field(repr=False)
    passcode: str = field(repr=False)


class Accounts:
    """The loaded accounts; lookups and credential checks.

    Verification runs scrypt (~50 ms): call it from a worker thread in async code
    (`asyncio.to_thread`). Successful API-key/passcode checks are remembered in memory
    (keyed by an HMAC of the secret under a per-process random key), so only the first
    request with a given key pays for scrypt.
    """

    def __init__(self, accounts: Sequence[Account] = (), *, path: Path | None = None) -> None:
        self.path = path
        self._by_name: dict[str, Account] = {}
        self._by_username: dict[str, Account] = {}
        self._by_clevertap: dict[str, Account] = {}
        for account in accounts:
            if account.name in self._by_name:
                raise AccountsConfigError(f"account {account.name!r} is defined twice")
            if account.username in self._by_username:
                other = self._by_username[account.username].name
                raise AccountsConfigError(
                    f"accounts {other!r} and {account.name!r} share the username "
                    f"{account.username!r}"
                )
            ct_id = account.clevertap_account_id or account.name
            if ct_id in self._by_clevertap:
                raise AccountsConfigError(
                    f"accounts {self._by_clevertap[ct_id].name!r} and {account.name!r} "
                    f"share the clevertap_account_id {ct_id!r}"
                )
            self._by_name[account.name] = account
            self._by_username[account.username] = account
            self._by_clevertap[ct_id] = account
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[bytes, str] = {}
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[Account]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> Account | None:
        return self._by_name.get(name)

    def by_username(self, username: str) -> Account | None:
        return self._by_username.get(username)

    def by_clevertap_account_id(self, account_id: str) -> Account | None:
        return self._by_clevertap.get(account_id)

    def _resolve(self, account: Account | str) -> Account | None:
        return self._by_name.get(account) if isinstance(account, str) else account

    def verify_sftp(self, username: str, password: str) -> Account | None:
        """The account whose SFTP login this is, or None (unknown user or wrong password).

        An unknown username costs the same scrypt work as a known one.
        """
        account = self._by_username.get(username)
        if account is None or account.password_hash is None:
            _dummy_verify(password)
            return None
        return account if verify_secret(account.password_hash, password) else None

    def verify_api_key(self, account: Account | str, key: str) -> bool:
        """Whether `key` is the HTTP API key of `account` (an Account or its name)."""
        return self._verify_cached("api_key", self._resolve(account), key)

    def verify_passcode(self, account: Account | str, passcode: str) -> bool:
        """Whether `passcode` is the CleverTap passcode of `account`."""
        return self._verify_cached("passcode", self._resolve(account), passcode)

    def find_by_api_key(self, key: str) -> Account | None:
        """The account an API key belongs to, when the request does not name the account.

        Keys made by `add_account` start with ``<account>.``, which selects the one
        account to check; other keys are checked against every account.
        """
        prefix, dot, _rest = key.partition(".")
        candidates = [self._by_name[prefix]] if dot and prefix in self._by_name else list(self)
        for account in candidates:
            if self.verify_api_key(account, key):
                return account
        return None

    def _verify_cached(self, kind: str, account: Account | None, secret: str) -> bool:
        if account is None:
            _dummy_verify(secret)
            return False
        stored = account.api_key_hash if kind == "api_key" else account.passcode_hash
        mac = hmac.new(
            self._cache_key,
            f"{kind}\x00{account.name}\x00{stored}\x00".encode()
            + secret.encode("utf-8", "surrogatepass"),
            hashlib.sha256,
        ).digest()
        with self._lock:
            if self._verified.get(mac) == account.name:
                return True
        if not verify_secret(stored, secret):
            return False
        with self._lock:
            if len(self._verified) >= 4096:
                self._verified.clear()
            self._verified[mac] = account.name
        return True


# ---------------------------------------------------------------------------- loading


def load_accounts(path: Path) -> Accounts:
    """Reads and checks the accounts file. A missing file is an error (see
    `ensure_demo_account` for first runs)."""
    try:
        with path.open("rb") as handle:
            doc = tomllib.load(handle)
    except FileNotFoundError:
        raise AccountsConfigError(f"{path}: no accounts file") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccountsConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_accounts(doc, path=path)


def parse_accounts(doc: Mapping[str, Any], *, path: Path | None = None) -> Accounts:
    """Accounts from an already parsed TOML document."""
    where = f"{path}: " if path else ""
    table = doc.get("accounts", {})
    if not isinstance(table, Mapping):
        raise AccountsConfigError(f"{where}[accounts] must be a table of account tables")
    accounts = []
    for name, entry in table.items():
        try:
            accounts.append(_parse_account(name, entry))
        except (ValueError, TypeError) as exc:
            raise AccountsConfigError(f"{where}account {name!r}: {exc}") from None
    try:
        return Accounts(accounts, path=path)
    except AccountsConfigError as exc:
        raise AccountsConfigError(f"{where}{exc}") from None


def _parse_account(name: str, entry: Any) -> Account:
    if not ACCOUNT_NAME.match(name):
        raise ValueError(
            "an account name is 1-63 characters of a-z, 0-9, '_' and '-', starting with a "
            "letter or digit"
        )
    if not isinstance(entry, Mapping):
        raise ValueError("must be a table")
    unknown = sorted(set(entry) - _KNOWN_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")
    username = entry.get("username", name)
    if not isinstance(username, str) or not USERNAME.match(username):
        raise ValueError("username must be 1-64 characters of letters, digits, '._@-'")
    hashes: dict[str, str | None] = {}
    for key in _SECRET_FIELDS:
        value = entry.get(key)
        if value is None:
            hashes[key] = None
            continue
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string")
        if not value.startswith("scrypt$"):
            raise ValueError(
                f"{key} must be stored hashed (scrypt$n$r$p$salt$hash), never in plain text"
            )
        try:
            _parse_hash(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        hashes[key] = value
    keys = entry.get("authorized_keys", [])
    if isinstance(keys, str):
        keys = [line for line in keys.splitlines() if line.strip()]
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError("authorized_keys must be a list of OpenSSH public key lines")
    for key_line in keys:
        _check_public_key(key_line)
    flags = {}
    for key in ("trigger_imports", "dedup_fingerprint"):
        value = entry.get(key, False)
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        flags[key] = value
    dialect = entry.get("dialect")
    if dialect is not None and dialect not in _DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(sorted(_DIALECTS))}")
    extra = {}
    for key in _SETTING_KEYS:
        if key in entry:
            value = entry[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{key} must be a non-negative number")
            extra[key] = value
    csv_mapping = None
    if "csv_mapping" in entry:
        parsed = parse_mapping(entry["csv_mapping"])
        if isinstance(parsed, Rejection):
            raise ValueError(f"csv_mapping: {parsed.message}")
        csv_mapping = parsed
    ct_id = entry.get("clevertap_account_id", name)
    if not isinstance(ct_id, str) or not ct_id:
        raise ValueError("clevertap_account_id must be a non-empty string")
    return Account(
        s3=_parse_s3(entry),
        name=name,
        username=username,
        password_hash=hashes["password"],
        api_key_hash=hashes["api_key"],
        passcode_hash=hashes["passcode"],
        clevertap_account_id=ct_id,
        authorized_keys=tuple(k.strip() for k in keys),
        trigger_imports=flags["trigger_imports"],
        dedup_fingerprint=flags["dedup_fingerprint"],
        dialect=dialect,
        extra_settings=extra,
        csv_mapping=csv_mapping,
        notify_emails=_string_list(entry, "notify_emails", "@", "email addresses"),
        webhooks=_string_list(entry, "webhooks", "http", "http:// or https:// URLs"),
    )


def _parse_s3(entry: Mapping[str, Any]) -> dict[str, str]:
    """The ``s3_*`` keys of an account (docs/S3.md); the secret key is never here."""
    s3 = {key[3:]: entry[key] for key in entry if key.startswith("s3_")}
    for key, value in s3.items():
        if not isinstance(value, str):
            raise ValueError(f"s3_{key} must be a string")
    if s3 and not s3.get("bucket"):
        raise ValueError("s3_bucket is required when any s3_ key is set")
    if s3 and not s3.get("access_key_id"):
        raise ValueError("s3_access_key_id is required when s3_bucket is set")
    endpoint = s3.get("endpoint_url")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ValueError("s3_endpoint_url must start with http:// or https://")
    return s3


def _string_list(entry: Mapping[str, Any], key: str, must: str, what: str) -> tuple[str, ...]:
    values = entry.get(key, [])
    ok = isinstance(values, list) and all(isinstance(v, str) for v in values)
    if ok and must == "http":
        ok = all(v.startswith(("http://", "https://")) for v in values)
    elif ok:
        ok = all(must in v for v in values)
    if not ok:
        raise ValueError(f"{key} must be a list of {what}")
    return tuple(values)


def _check_public_key(line: str) -> None:
    parts = line.split()
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        raise ValueError(
            f"authorized_keys entry {line[:40]!r}… is not '<type> <base64> [comment]' "
            "(options are not supported)"
        )
    try:
        base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValueError(f"authorized_keys entry {line[:40]!r}… has bad base64") from None


# ---------------------------------------------------------------------------- writing

_HEADER = """\
# Tidegate accounts. One [accounts.<name>] table per account; see docs/UPLOADS.md.
# Secrets are stored as scrypt hashes; the plain texts were shown once at creation.
# This file must stay private (mode 0600).
"""


def _toml_str(value: str) -> str:
    # A TOML basic string; JSON's escapes (\\ \" \n \t \uXXXX) are all valid TOML.
    return json.dumps(value, ensure_ascii=True)


def _account_toml(
    name: str,
    username: str,
    hashes: Mapping[str, str],
    *,
    authorized_keys: Sequence[str],
    trigger_imports: bool,
    dedup_fingerprint: bool,
) -> str:
    lines = [
        f"[accounts.{name}]",
        f"username = {_toml_str(username)}",
        *(f"{key} = {_toml_str(hashes[key])}" for key in _SECRET_FIELDS),
        f"authorized_keys = [{', '.join(_toml_str(k) for k in authorized_keys)}]",
        f"trigger_imports = {'true' if trigger_imports else 'false'}",
        f"dedup_fingerprint = {'true' if dedup_fingerprint else 'false'}",
    ]
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Atomically replaces `path` with `text`, mode 0600 from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, text)


def _new_credentials(name: str, username: str) -> Credentials:
    return Credentials(
        account=name,
        username=username,
        password=secrets.token_urlsafe(18),
        api_key=f"{name}.{secrets.token_urlsafe(24)}",
        passcode=secrets.token_urlsafe(12),
    )


def _hashes(creds: Credentials) -> dict[str, str]:
    return {
        "password": hash_secret(creds.password),
        "api_key": hash_secret(creds.api_key),
        "passcode": hash_secret(creds.passcode),
    }


_file_lock = threading.Lock()


def add_account(
    path: Path,
    name: str,
    *,
    username: str | None = None,
    authorized_keys: Sequence[str] = (),
    trigger_imports: bool = False,
    dedup_fingerprint: bool = False,
) -> Credentials:
    """Adds an account with random credentials to the file (created if missing).

    The new table is appended, so the rest of the file (comments included) is kept. The
    file is replaced atomically and stays 0600. Returns the plain texts — the only time
    they exist.
    """
    path = Path(path)  # a str path is fine too
    username = username or name
    if not ACCOUNT_NAME.match(name):
        raise AccountsConfigError(
            f"{name!r}: an account name is 1-63 characters of a-z, 0-9, '_' and '-'"
        )
    if not USERNAME.match(username):
        raise AccountsConfigError(f"{username!r}: not a valid username")
    for key_line in authorized_keys:
        try:
            _check_public_key(key_line)
        except ValueError as exc:
            raise AccountsConfigError(str(exc)) from None
    with _file_lock:
        existing = path.read_text(encoding="utf-8") if path.exists() else _HEADER
        current = parse_accounts(tomllib.loads(existing), path=path)
        if name in current:
            raise AccountsConfigError(f"{path}: account {name!r} already exists")
        if current.by_username(username) is not None:
            raise AccountsConfigError(f"{path}: username {username!r} is already in use")
        creds = _new_credentials(name, username)
        block = _account_toml(
            name,
            username,
            _hashes(creds),
            authorized_keys=authorized_keys,
            trigger_imports=trigger_imports,
            dedup_fingerprint=dedup_fingerprint,
        )
        sep = "" if existing.endswith("\n\n") else ("\n" if existing.endswith("\n") else "\n\n")
        text = existing + sep + block
        parse_accounts(tomllib.loads(text), path=path)  # the result must load
        _write_private(path, text)
    return creds


#: Per-account settings `set_account` changes (`tidegate accounts set NAME KEY=VALUE`).
SETTABLE = (
    "trigger_imports",
    "dedup_fingerprint",
    "dialect",
    *_SETTING_KEYS,
    *S3_KEYS,
    *_LIST_KEYS,
)
#: Credentials `rotate_credential` replaces.
ROTATABLE = ("password", "api_key", "passcode")


def _edit(path: Path, name: str, change: Callable[[Any], None]) -> None:
    """Applies `change` to the account's TOML table (comments and order kept), checks
    the result loads, and replaces the file atomically (0600)."""
    import tomlkit

    path = Path(path)
    with _file_lock:
        if not path.exists():
            raise AccountsConfigError(f"{path}: no accounts file")
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
        table = doc.get("accounts", {})
        if name not in table:
            raise AccountsConfigError(f"{path}: no account {name!r}")
        change(table)
        text = tomlkit.dumps(doc)
        parse_accounts(tomllib.loads(text), path=path)  # the result must load
        _write_private(path, text)


def _setting_value(key: str, value: str) -> Any:
    """A setting's typed value from its command-line text (None: back to the default)."""
    if key not in SETTABLE:
        raise AccountsConfigError(f"{key!r} cannot be set; one of: {', '.join(SETTABLE)}")
    if value == "default" and key not in ("trigger_imports", "dedup_fingerprint"):
        return None
    if key in ("trigger_imports", "dedup_fingerprint"):
        if value.lower() not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            raise AccountsConfigError(f"{key} must be true or false, not {value!r}")
        return value.lower() in ("true", "yes", "on", "1")
    if key == "dialect" or key in S3_KEYS:
        return value
    if key in _LIST_KEYS:  # comma-separated on the command line
        return [item.strip() for item in value.split(",") if item.strip()] or None
    try:
        return int(value)
    except ValueError:
        raise AccountsConfigError(f"{key} must be a whole number, not {value!r}") from None


def set_account(path: Path, name: str, changes: Mapping[str, str]) -> dict[str, Any]:
    """Sets per-account settings from their command-line text, all in one write (an S3
    source needs its bucket and key id together); returns the typed values. `dialect=`,
    an `s3_` key or a limit set to `default` removes the key (the default applies)."""
    typed = {key: _setting_value(key, value) for key, value in changes.items()}

    def change(table: Any) -> None:
        for key, value in typed.items():
            if value is None:
                table[name].pop(key, None)
            else:
                table[name][key] = value

    _edit(path, name, change)
    return typed


def rotate_credential(path: Path, name: str, which: str) -> str:
    """Replaces one credential with a new random one; returns its plain text (shown once).
    The old one stops working as soon as the file is read again."""
    if which not in ROTATABLE:
        raise AccountsConfigError(f"{which!r}: one of {', '.join(ROTATABLE)}")
    fresh = _new_credentials(name, name)
    plain = {"password": fresh.password, "api_key": fresh.api_key, "passcode": fresh.passcode}
    secret = plain[which]

    def change(table: Any) -> None:
        table[name][which] = hash_secret(secret)

    _edit(path, name, change)
    return secret


def remove_account(path: Path, name: str) -> None:
    """Removes the account's table: its logins and keys stop working; its data stays."""

    def change(table: Any) -> None:
        del table[name]

    _edit(path, name, change)


def ensure_demo_account(path: Path) -> tuple[Account, Credentials] | None:
    """First run: creates the accounts file with a ``demo`` account and random credentials.

    Returns the account and its plain-text credentials for `tidegate run` to print once,
    or None when the file already exists (nothing is changed then). There is no fixed
    default password.
    """
    if path.exists():
        return None
    creds = _new_credentials(DEMO_ACCOUNT, DEMO_ACCOUNT)
    text = (
        _HEADER
        + "\n"
        + _account_toml(
            DEMO_ACCOUNT,
            DEMO_ACCOUNT,
            _hashes(creds),
            authorized_keys=(),
            trigger_imports=False,
            dedup_fingerprint=False,
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not create_file(path, text):
        return None  # created concurrently: that process printed the credentials
    account = load_accounts(path).get(DEMO_ACCOUNT)
    assert account is not None
    return account, creds
