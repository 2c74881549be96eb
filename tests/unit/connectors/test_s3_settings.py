"""The S3 source settings of an account and its secret-key file (docs/S3.md)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from connectors.accounts import AccountsConfigError, parse_accounts
from connectors.s3 import read_s3_secret, s3_source_of, secret_path, write_s3_secret

S3_KEYS = {
    "s3_bucket": "acme-exports",
    "s3_prefix": "tidegate/events",
    "s3_region": "eu-west-1",
    "s3_endpoint_url": "https://minio.example:9000",
    "s3_access_key_id": "AKIAEXAMPLE",
}


def test_s3_keys_make_the_account_source_with_a_slash_ended_prefix() -> None:
    account = parse_accounts({"accounts": {"acme": dict(S3_KEYS)}}).get("acme")
    assert account is not None
    source = s3_source_of(account)
    assert source is not None
    assert (source.bucket, source.prefix, source.region, source.endpoint_url) == (
        "acme-exports",
        "tidegate/events/",
        "eu-west-1",
        "https://minio.example:9000",
    )
    assert source.access_key_id == "AKIAEXAMPLE"


def test_an_account_without_s3_keys_has_no_source() -> None:
    account = parse_accounts({"accounts": {"acme": {}}}).get("acme")
    assert account is not None and s3_source_of(account) is None


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"s3_prefix": "x/"}, "s3_bucket is required"),
        ({"s3_bucket": "b"}, "s3_access_key_id is required"),
        ({**S3_KEYS, "s3_endpoint_url": "ftp://x"}, "must start with http"),
        ({**S3_KEYS, "s3_bucket": 3}, "s3_bucket must be a string"),
        # the secret never belongs in accounts.toml
        ({**S3_KEYS, "s3_secret_access_key": "plain"}, "unknown key(s) s3_secret_access_key"),
    ],
)
def test_bad_s3_keys_are_config_errors(entry: dict[str, object], fragment: str) -> None:
    with pytest.raises(AccountsConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_accounts({"accounts": {"acme": entry}})


def test_the_secret_key_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    assert read_s3_secret(tmp_path, "acme") is None
    write_s3_secret(tmp_path, "acme", "first-secret\n")
    write_s3_secret(tmp_path, "acme", "second-secret")
    path = secret_path(tmp_path, "acme")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_s3_secret(tmp_path, "acme") == "second-secret"
    assert [p.name for p in path.parent.iterdir()] == ["acme"]  # no temporary left


def test_the_s3_source_is_set_with_the_account_settings(tmp_path: Path) -> None:
    from connectors.accounts import add_account, load_accounts, set_account

    path = tmp_path / "accounts.toml"
    add_account(path, "acme")
    with pytest.raises(AccountsConfigError, match="s3_access_key_id is required"):
        set_account(path, "acme", {"s3_bucket": "acme-exports"})  # refused, nothing written
    assert s3_source_of(load_accounts(path).get("acme")) is None  # type: ignore[arg-type]
    set_account(
        path,
        "acme",
        {"s3_bucket": "acme-exports", "s3_access_key_id": "AKIAEXAMPLE", "s3_prefix": "ev/"},
    )
    account = load_accounts(path).get("acme")
    assert account is not None
    source = s3_source_of(account)
    assert source is not None and (source.bucket, source.prefix) == ("acme-exports", "ev/")
    set_account(path, "acme", {"s3_prefix": "default"})
    again = load_accounts(path).get("acme")
    assert again is not None and "prefix" not in again.s3
