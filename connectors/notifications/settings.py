"""The notifier's settings, read once at start-up from the command line's merged values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from streams.core.config_values import (
    Values,
    read_choice,
    read_float,
    read_int,
    read_port,
    read_str,
)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"  # starttls | tls | none
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "tidegate@localhost"


@dataclass(frozen=True, slots=True)
class NotifySettings:
    smtp: SmtpSettings | None = None  # None: no emails are sent (email targets are skipped)
    console_url: str = ""  # base of the console links in emails and reports
    attach_limit: int = 5 * 1024 * 1024  # feedback files above this are linked, not attached
    concurrency: int = 8
    timeout: float = 10.0  # seconds per attempt (connect + send + answer)
    retry_base: float = 5.0  # first retry after this; doubles each time
    retry_max_delay: float = 3600.0
    max_attempts: int = 10
    poll_seconds: float = 1.0

    def delay(self, attempts: int) -> float:
        """Seconds before the next attempt after `attempts` failed ones."""
        return float(min(self.retry_base * 2 ** (attempts - 1), self.retry_max_delay))

    # every variable `from_values` reads (the command line's config file accepts these keys)
    NAMES: ClassVar[tuple[str, ...]] = (
        "TIDEGATE_SMTP_HOST",
        "TIDEGATE_SMTP_PORT",
        "TIDEGATE_SMTP_SECURITY",
        "TIDEGATE_SMTP_USER",
        "TIDEGATE_SMTP_PASSWORD",
        "TIDEGATE_MAIL_FROM",
        "TIDEGATE_CONSOLE_URL",
        "TIDEGATE_NOTIFY_ATTACH_BYTES",
        "TIDEGATE_NOTIFY_CONCURRENCY",
        "TIDEGATE_NOTIFY_TIMEOUT",
        "TIDEGATE_NOTIFY_RETRY_BASE",
        "TIDEGATE_NOTIFY_RETRY_MAX_DELAY",
        "TIDEGATE_NOTIFY_MAX_ATTEMPTS",
        "TIDEGATE_NOTIFY_POLL",
    )

    @classmethod
    def from_values(cls, values: Values) -> NotifySettings:
        """The notifier's settings from the command line's merged `TIDEGATE_*` values."""
        smtp = None
        if read_str(values, "TIDEGATE_SMTP_HOST", ""):
            smtp = SmtpSettings(
                host=read_str(values, "TIDEGATE_SMTP_HOST", ""),
                port=read_port(values, "TIDEGATE_SMTP_PORT", 587, minimum=1),
                security=read_choice(
                    values, "TIDEGATE_SMTP_SECURITY", "starttls", ("starttls", "tls", "none")
                ),
                username=read_str(values, "TIDEGATE_SMTP_USER", "") or None,
                password=read_str(values, "TIDEGATE_SMTP_PASSWORD", "") or None,
                sender=read_str(values, "TIDEGATE_MAIL_FROM", "tidegate@localhost"),
            )
        return cls(
            smtp=smtp,
            console_url=read_str(values, "TIDEGATE_CONSOLE_URL", "").rstrip("/"),
            attach_limit=read_int(
                values, "TIDEGATE_NOTIFY_ATTACH_BYTES", 5 * 1024 * 1024, minimum=0
            ),
            concurrency=read_int(values, "TIDEGATE_NOTIFY_CONCURRENCY", 8, minimum=1),
            timeout=read_float(values, "TIDEGATE_NOTIFY_TIMEOUT", 10.0, minimum=0),
            retry_base=read_float(values, "TIDEGATE_NOTIFY_RETRY_BASE", 5.0, minimum=0),
            retry_max_delay=read_float(
                values, "TIDEGATE_NOTIFY_RETRY_MAX_DELAY", 3600.0, minimum=0
            ),
            max_attempts=read_int(values, "TIDEGATE_NOTIFY_MAX_ATTEMPTS", 10, minimum=1),
            poll_seconds=read_float(values, "TIDEGATE_NOTIFY_POLL", 1.0, minimum=0),
        )
