"""Notifier settings: read once from the merged values; the retry schedule doubles."""

from __future__ import annotations

import pytest

from connectors.notifications.settings import NotifySettings
from streams.core.config_values import SettingError
from tests.unit.names_read import names_read


def test_retry_delay_doubles_from_the_base_up_to_the_cap() -> None:
    settings = NotifySettings(retry_base=5, retry_max_delay=60)
    assert [settings.delay(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


def test_no_smtp_host_means_no_email() -> None:
    assert NotifySettings.from_values({}).smtp is None


def test_smtp_settings_from_the_environment() -> None:
    settings = NotifySettings.from_values(
        {
            "TIDEGATE_SMTP_HOST": "mail.example",
            "TIDEGATE_SMTP_PORT": "2525",
            "TIDEGATE_SMTP_USER": "u",
            "TIDEGATE_SMTP_PASSWORD": "hunter2-secret",
            "TIDEGATE_CONSOLE_URL": "https://tg.example/",
        }
    )
    assert settings.smtp is not None
    assert (settings.smtp.host, settings.smtp.port, settings.smtp.security) == (
        "mail.example",
        2525,
        "starttls",
    )
    assert "hunter2" not in repr(settings.smtp)  # the password is never printed
    assert settings.console_url == "https://tg.example"


def test_unknown_smtp_security_is_a_configuration_error() -> None:
    with pytest.raises(SettingError, match="TIDEGATE_SMTP_SECURITY='ssl3'"):
        NotifySettings.from_values({"TIDEGATE_SMTP_HOST": "h", "TIDEGATE_SMTP_SECURITY": "ssl3"})


def test_a_bad_number_names_its_variable() -> None:
    with pytest.raises(SettingError, match="TIDEGATE_NOTIFY_CONCURRENCY='many'"):
        NotifySettings.from_values({"TIDEGATE_NOTIFY_CONCURRENCY": "many"})
    with pytest.raises(SettingError, match="TIDEGATE_SMTP_PORT='smtp'"):
        NotifySettings.from_values({"TIDEGATE_SMTP_HOST": "h", "TIDEGATE_SMTP_PORT": "smtp"})


def test_names_lists_exactly_what_from_values_reads() -> None:
    values = {name: "1" for name in NotifySettings.NAMES} | {"TIDEGATE_SMTP_SECURITY": "tls"}
    assert names_read(NotifySettings.from_values, values) == set(NotifySettings.NAMES)
