"""The settings file: flat TOML keys named like the variables; every mistake named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidegate.config_file import ConfigFileError, key_of, read_config_file

KNOWN = ("TIDEGATE_HTTP_PORT", "TIDEGATE_DATA", "TIDEGATE_FTP_ALLOW_PLAIN", "TIDEGATE_S3_INTERVAL")


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tidegate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_keys_are_the_variables_without_prefix_in_lower_case() -> None:
    assert key_of("TIDEGATE_HTTP_PORT") == "http_port"


def test_values_become_the_text_an_environment_variable_would_hold(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        'http_port = 8080\ndata = "/var/lib/tidegate"\nftp_allow_plain = true\ns3_interval = 2.5\n',
    )
    config = read_config_file(path, KNOWN)
    assert config.path == path
    assert config.values == {
        "TIDEGATE_HTTP_PORT": "8080",
        "TIDEGATE_DATA": "/var/lib/tidegate",
        "TIDEGATE_FTP_ALLOW_PLAIN": "true",
        "TIDEGATE_S3_INTERVAL": "2.5",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("htp_port = 1\n", "unknown key 'htp_port' (did you mean 'http_port'?)"),
        ("TIDEGATE_HTTP_PORT = 1\n", "unknown key 'TIDEGATE_HTTP_PORT' (write 'http_port')"),
        ("config = 'x.toml'\n", "unknown key 'config'"),
        ("http_port = [8080]\n", "key 'http_port' = [8080]: a list is not a setting value"),
        ("[ftp]\nport = 21\n", "[ftp] is a table; the file has no tables: write ftp_port = ..."),
        ("http_port = 8080\nhttp_port = 8081\n", "not valid TOML"),
        ("http_port = \n", "not valid TOML"),
    ],
)
def test_a_mistake_is_an_error_naming_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(ConfigFileError) as caught:
        read_config_file(path, KNOWN)
    assert str(caught.value).startswith(f"config file {path}: ")
    assert message in str(caught.value)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"config file .*nope\.toml: No such file"):
        read_config_file(tmp_path / "nope.toml", KNOWN)
