"""Notifier settings: read from the environment once; the retry schedule doubles."""

from __future__ import annotations

import pytest

from connectors.notifications.settings import NotifySettings


def test_retry_delay_doubles_from_the_base_up_to_the_cap() -> None:
    settings = NotifySettings(retry_base=5, retry_max_delay=60)
    assert [settings.delay(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


def test_no_smtp_host_means_no_email() -> None:
    assert NotifySettings.from_env({}).smtp is None


def test_smtp_settings_from_the_environment() -> None:
    settings = NotifySettings.from_env(
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
    with pytest.raises(ValueError, match="TIDEGATE_SMTP_SECURITY"):
        NotifySettings.from_env({"TIDEGATE_SMTP_HOST": "h", "TIDEGATE_SMTP_SECURITY": "ssl3"})
