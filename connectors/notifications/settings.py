"""The notifier's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, console_url: str = "") -> NotifySettings:
        smtp = None
        if env.get("TIDEGATE_SMTP_HOST"):
            smtp = SmtpSettings(
                host=env["TIDEGATE_SMTP_HOST"],
                port=int(env.get("TIDEGATE_SMTP_PORT", "587")),
                security=env.get("TIDEGATE_SMTP_SECURITY", "starttls"),
                username=env.get("TIDEGATE_SMTP_USER") or None,
                password=env.get("TIDEGATE_SMTP_PASSWORD") or None,
                sender=env.get("TIDEGATE_MAIL_FROM", "tidegate@localhost"),
            )
            if smtp.security not in ("starttls", "tls", "none"):
                raise ValueError("TIDEGATE_SMTP_SECURITY must be starttls, tls or none")
        return cls(
            smtp=smtp,
            console_url=env.get("TIDEGATE_CONSOLE_URL", console_url).rstrip("/"),
            attach_limit=int(env.get("TIDEGATE_NOTIFY_ATTACH_BYTES", str(5 * 1024 * 1024))),
            concurrency=int(env.get("TIDEGATE_NOTIFY_CONCURRENCY", "8")),
            timeout=float(env.get("TIDEGATE_NOTIFY_TIMEOUT", "10")),
            retry_base=float(env.get("TIDEGATE_NOTIFY_RETRY_BASE", "5")),
            retry_max_delay=float(env.get("TIDEGATE_NOTIFY_RETRY_MAX_DELAY", "3600")),
            max_attempts=int(env.get("TIDEGATE_NOTIFY_MAX_ATTEMPTS", "10")),
            poll_seconds=float(env.get("TIDEGATE_NOTIFY_POLL", "1")),
        )
