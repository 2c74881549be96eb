"""Accounts file: hashed secrets, verification, first-run demo account, adding accounts."""

from __future__ import annotations

import base64
import stat
import tomllib
from pathlib import Path

import asyncssh
import pytest

from connectors.accounts import (
    Account,
    Accounts,
    AccountsConfigError,
    add_account,
    ensure_demo_account,
    hash_secret,
    load_accounts,
    parse_accounts,
    verify_secret,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _pubkey() -> str:
    key = asyncssh.generate_private_key("ssh-ed25519", comment="laptop")
    return key.export_public_key("openssh").decode().strip()


# ---------------------------------------------------------------------------- hashing


def test_hash_format_and_verification() -> None:
    encoded = hash_secret("correct horse")
    kind, n, r, p, salt, digest = encoded.split("$")
    assert (kind, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
    assert verify_secret(encoded, "correct horse")
    assert not verify_secret(encoded, "correct horse ")
    assert not verify_secret(encoded, "")
    assert not verify_secret(None, "anything")


def test_every_hash_has_its_own_salt() -> None:
    assert hash_secret("same") != hash_secret("same")


def test_stored_parameters_are_honoured_and_bounded() -> None:
    cheap = hash_secret("pw", n=1 << 10, r=4, p=1)
    assert cheap.startswith("scrypt$1024$4$1$") and verify_secret(cheap, "pw")
    salt = base64.b64encode(b"s" * 16).decode()
    digest = base64.b64encode(b"d" * 32).decode()
    for bad in (
        f"scrypt${1 << 24}$8$1${salt}${digest}",  # would allocate gigabytes
        f"scrypt$1000$8$1${salt}${digest}",  # not a power of two
        f"scrypt$16384$99$1${salt}${digest}",
        f"scrypt$16384$8$1$!!${digest}",
        "bcrypt$whatever",
    ):
        with pytest.raises(ValueError):
            verify_secret(bad, "pw")


# ---------------------------------------------------------------------------- loading


def _doc(**account: object) -> dict[str, object]:
    return {"accounts": {"acme": account}}


def test_load_full_account(tmp_path: Path) -> None:
    key = _pubkey()
    pw, api, pc = hash_secret("pw"), hash_secret("acme.key"), hash_secret("pc")
    path = tmp_path / "accounts.toml"
    path.write_text(
        f"""
[accounts.acme]
username = "acme-sftp"
password = "{pw}"
api_key = "{api}"
passcode = "{pc}"
clevertap_account_id = "TEST-123-456"
authorized_keys = ["{key}"]
trigger_imports = true
dedup_fingerprint = true
max_event_types = 100
dialect = "zeta"

[accounts.other]
password = "{hash_secret("other")}"
"""
    )
    accounts = load_accounts(path)
    assert accounts.names == ["acme", "other"]
    acme = accounts.get("acme")
    assert acme is not None
    assert acme.username == "acme-sftp"
    assert acme.authorized_keys == (key,)
    assert acme.trigger_imports and acme.dedup_fingerprint
    assert acme.dialect == "zeta"
    assert acme.settings_mapping() == {
        "trigger_imports": True,
        "dedup_fingerprint": True,
        "max_event_types": 100,
    }
    assert accounts.by_clevertap_account_id("TEST-123-456") is acme
    other = accounts.get("other")
    assert other is not None and other.username == "other"  # defaults to the name
    assert other.api_key_hash is None and not other.trigger_imports
    assert "pw" not in repr(acme) and "scrypt" not in repr(acme)  # hashes kept out of logs


def test_settings_mapping_feeds_the_core_settings() -> None:
    from streams.core.settings import AccountSettings

    account = Account("acme", "acme", trigger_imports=True, extra_settings={"max_properties": 9})
    settings = AccountSettings.from_mapping(account.settings_mapping())
    assert settings.trigger_imports and settings.max_properties == 9


@pytest.mark.parametrize(
    ("account", "fragment"),
    [
        ({"password": "hunter2"}, "never in plain text"),
        ({"api_key": "plain-key"}, "never in plain text"),
        ({"passcode": 1234}, "must be a string"),
        ({"password": "scrypt$16384$8$1$xx$yy"}, "password"),
        ({"trigger_imports": "yes"}, "true or false"),
        ({"authorized_keys": ["not a key"]}, "authorized_keys"),
        ({"authorized_keys": ["ssh-ed25519 %%%%"]}, "bad base64"),
        ({"colour": "blue"}, "unknown key"),
        ({"username": "has space"}, "username"),
        ({"dialect": "csv"}, "dialect"),
        ({"max_event_types": -1}, "non-negative"),
    ],
)
def test_bad_account_entries_are_config_errors(account: dict[str, object], fragment: str) -> None:
    with pytest.raises(AccountsConfigError, match="acme") as info:
        parse_accounts(_doc(**account))
    assert fragment in str(info.value)


def test_bad_names_and_duplicates() -> None:
    for name in ("Upper", ".hidden", "-dash", "a/b", "x" * 64, ""):
        with pytest.raises(AccountsConfigError):
            parse_accounts({"accounts": {name: {}}})
    with pytest.raises(AccountsConfigError, match="share the username"):
        parse_accounts({"accounts": {"a": {"username": "u"}, "b": {"username": "u"}}})
    with pytest.raises(AccountsConfigError, match="clevertap_account_id"):
        parse_accounts(
            {"accounts": {"a": {"clevertap_account_id": "X"}, "b": {"clevertap_account_id": "X"}}}
        )


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(AccountsConfigError, match="no accounts file"):
        load_accounts(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[accounts\n")
    with pytest.raises(AccountsConfigError, match="not valid TOML"):
        load_accounts(broken)


# ---------------------------------------------------------------------------- verifying


@pytest.fixture(scope="module")
def accounts() -> Accounts:
    return Accounts(
        [
            Account(
                "acme",
                "acme-sftp",
                password_hash=hash_secret("s3cret"),
                api_key_hash=hash_secret("acme.apikey"),
                passcode_hash=hash_secret("pass"),
            ),
            Account("bare", "bare"),  # no secrets: no way in
        ]
    )


def test_verify_sftp(accounts: Accounts) -> None:
    acme = accounts.verify_sftp("acme-sftp", "s3cret")
    assert acme is not None and acme.name == "acme"
    assert accounts.verify_sftp("acme", "s3cret") is None  # the username, not the name
    assert accounts.verify_sftp("acme-sftp", "S3cret") is None
    assert accounts.verify_sftp("nobody", "s3cret") is None
    assert accounts.verify_sftp("bare", "") is None


def test_verify_api_key_and_passcode(accounts: Accounts) -> None:
    assert accounts.verify_api_key("acme", "acme.apikey")
    assert accounts.verify_api_key("acme", "acme.apikey")  # cached path
    acme = accounts.get("acme")
    assert acme is not None
    assert accounts.verify_api_key(acme, "acme.apikey")
    assert not accounts.verify_api_key("acme", "acme.apikeY")
    assert not accounts.verify_api_key("bare", "")
    assert not accounts.verify_api_key("ghost", "acme.apikey")
    assert accounts.verify_passcode("acme", "pass")
    assert not accounts.verify_passcode("acme", "acme.apikey")  # secrets are not swappable
    assert not accounts.verify_api_key("acme", "pass")
    assert accounts.find_by_api_key("acme.apikey") is acme
    assert accounts.find_by_api_key("bare.apikey") is None
    assert accounts.find_by_api_key("apikey-without-prefix") is None


# ---------------------------------------------------------------------------- writing


def test_ensure_demo_account_first_run_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "accounts.toml"
    made = ensure_demo_account(path)
    assert made is not None
    account, creds = made
    assert account.name == creds.account == "demo"
    assert _mode(path) == 0o600
    text = path.read_text()
    for secret in (creds.password, creds.api_key, creds.passcode):
        assert len(secret) >= 16 and secret not in text  # only hashes are stored
    accounts = load_accounts(path)
    assert accounts.verify_sftp(creds.username, creds.password) is not None
    assert accounts.verify_api_key("demo", creds.api_key)
    assert accounts.verify_passcode("demo", creds.passcode)
    assert ensure_demo_account(path) is None  # second run: untouched
    assert path.read_text() == text
    other = ensure_demo_account(tmp_path / "elsewhere.toml")
    assert other is not None and other[1].password != creds.password  # random each time
    assert creds.password not in repr(creds)


def test_add_account_appends_and_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    ensure_demo_account(path)
    path.write_text(path.read_text() + "# operator's note: keep me\n")
    key = _pubkey()
    creds = add_account(
        path, "acme", username="acme-up", authorized_keys=[key], trigger_imports=True
    )
    assert creds.username == "acme-up" and creds.api_key.startswith("acme.")
    assert _mode(path) == 0o600
    text = path.read_text()
    assert "# operator's note: keep me" in text
    assert creds.password not in text
    accounts = load_accounts(path)
    assert accounts.names == ["acme", "demo"]
    acme = accounts.verify_sftp("acme-up", creds.password)
    assert acme is not None and acme.trigger_imports and acme.authorized_keys == (key,)
    assert accounts.find_by_api_key(creds.api_key) is acme
    tomllib.loads(text)  # still plain TOML

    with pytest.raises(AccountsConfigError, match="already exists"):
        add_account(path, "acme")
    with pytest.raises(AccountsConfigError, match="already in use"):
        add_account(path, "acme2", username="acme-up")
    with pytest.raises(AccountsConfigError):
        add_account(path, "Bad Name")
    with pytest.raises(AccountsConfigError):
        add_account(path, "keyless", authorized_keys=["nonsense"])
    assert load_accounts(path).names == ["acme", "demo"]  # failures changed nothing


def test_add_account_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "accounts.toml"
    creds = add_account(path, "first")
    assert _mode(path) == 0o600
    assert load_accounts(path).verify_sftp("first", creds.password) is not None


def test_notification_targets_are_account_settings(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(
        '[accounts.acme]\nnotify_emails = ["ops@acme.test"]\n'
        'webhooks = ["https://hooks.acme.test/tidegate"]\n'
    )
    path.chmod(0o600)
    acme = load_accounts(path).get("acme")
    assert acme is not None
    assert acme.notify_emails == ("ops@acme.test",)
    assert acme.webhooks == ("https://hooks.acme.test/tidegate",)


def test_a_webhook_that_is_not_an_http_url_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('[accounts.acme]\nwebhooks = ["ftp://x"]\n')
    path.chmod(0o600)
    with pytest.raises(AccountsConfigError, match="webhooks"):
        load_accounts(path)
