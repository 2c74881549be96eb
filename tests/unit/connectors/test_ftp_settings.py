"""The FTP drop's settings from the merged `TIDEGATE_*` values: defaults, off, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.ftp_settings import FtpSettings
from streams.core.config_values import SettingError
from tests.unit.names_read import names_read


def test_defaults_serve_tls_only_on_2121() -> None:
    settings = FtpSettings.from_values({})
    assert settings == FtpSettings(host="127.0.0.1", port=2121)


def test_port_minus_one_turns_the_drop_off() -> None:
    assert FtpSettings.from_values({"TIDEGATE_FTP_PORT": "-1"}) is None


def test_every_option_is_read() -> None:
    settings = FtpSettings.from_values(
        {
            "TIDEGATE_HOST": "0.0.0.0",
            "TIDEGATE_FTP_PORT": "0",
            "TIDEGATE_FTP_ALLOW_PLAIN": "true",
            "TIDEGATE_FTP_PASSIVE_PORTS": "60000-60010",
            "TIDEGATE_FTP_MASQUERADE_ADDRESS": "203.0.113.7",
            "TIDEGATE_FTP_CERT": "/etc/tg/chain.pem",
            "TIDEGATE_FTP_KEY": "",
        }
    )
    assert settings == FtpSettings(
        host="0.0.0.0",
        port=0,
        allow_plain=True,
        passive_ports=(60000, 60010),
        masquerade_address="203.0.113.7",
        certfile=Path("/etc/tg/chain.pem"),
        keyfile=None,
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("TIDEGATE_FTP_PORT", "ftp"),
        ("TIDEGATE_FTP_PORT", "-2"),
        ("TIDEGATE_FTP_ALLOW_PLAIN", "sometimes"),
        ("TIDEGATE_FTP_PASSIVE_PORTS", "60000..60010"),
    ],
)
def test_a_bad_value_names_its_variable_even_with_the_drop_off(name: str, text: str) -> None:
    values = {"TIDEGATE_FTP_PORT": "-1", name: text}
    with pytest.raises(SettingError, match=f"{name}={text!r}"):
        FtpSettings.from_values(values)


def test_names_lists_exactly_what_from_values_reads() -> None:
    values = {name: "" for name in FtpSettings.NAMES} | {
        "TIDEGATE_FTP_PORT": "21",
        "TIDEGATE_LOGIN_TIMEOUT": "5",
        "TIDEGATE_IDLE_TIMEOUT": "5",
    }
    assert names_read(FtpSettings.from_values, values) == set(FtpSettings.NAMES)
