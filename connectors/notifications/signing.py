"""Webhook signatures: timestamped HMAC-SHA256 over ``t.body``, as ``t=...,v1=...``."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Tidegate-Signature"
DELIVERY_HEADER = "Tidegate-Delivery"
EVENT_HEADER = "Tidegate-Event"
DEFAULT_TOLERANCE = 300  # seconds a receiver accepts between the timestamp and its clock


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(
        secret.encode("utf-8"), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for `body` sent at `timestamp` (Unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, now: int, tolerance: int = DEFAULT_TOLERANCE
) -> bool:
    """Whether `header` signs `body` with `secret` and its timestamp is within `tolerance`."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False  # a replay of an old delivery
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))
