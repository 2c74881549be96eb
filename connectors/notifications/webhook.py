"""The webhook: a signed JSON POST of the final report."""

from __future__ import annotations

import time

import httpx

from connectors.notifications.report import EVENT
from connectors.notifications.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    sign,
)


class WebhookRefused(Exception):
    """The receiver answered, but not with a 2xx."""


async def post_webhook(
    client: httpx.AsyncClient, url: str, body: bytes, secret: str, delivery_id: str
) -> None:
    """One attempt; signed at send time, so each retry carries a fresh timestamp."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Tidegate-Webhook/1",
        SIGNATURE_HEADER: sign(secret, body, int(time.time())),
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: EVENT,
    }
    response = await client.post(url, content=body, headers=headers)
    if not 200 <= response.status_code < 300:
        raise WebhookRefused(f"HTTP {response.status_code}")
