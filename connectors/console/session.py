"""Signed session cookies (itsdangerous) and the CSRF token each session carries."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "tidegate_console"
CSRF_FIELD = "csrf"


@dataclass(frozen=True, slots=True)
class Session:
    account: str | None  # None: the operator, who sees every account
    csrf: str

    @property
    def operator(self) -> bool:
        return self.account is None

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf)


class Sessions:
    """Makes and reads the session cookie; an unsigned, forged or expired one reads as None."""

    def __init__(self, signing_key: str, max_age: int) -> None:
        self._serializer = URLSafeTimedSerializer(signing_key, salt="tidegate-console-session")
        self.max_age = max_age

    def new(self, account: str | None) -> tuple[Session, str]:
        session = Session(account, secrets.token_urlsafe(24))
        value = self._serializer.dumps({"a": account, "c": session.csrf})
        return session, value

    def read(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            doc = self._serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("c"), str):
            return None
        account = doc.get("a")
        if account is not None and not isinstance(account, str):
            return None
        return Session(account, doc["c"])
