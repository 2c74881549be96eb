"""Which state keys a batch of records will read, so that a runtime loads them in bulk."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.core.catalog import type_key
from streams.core.dedup import dedup_digest, dedup_key
from streams.core.identity import (
    IDENTITY_TABLE,
    identifier_name,
    identity_key,
    ordered_identifiers,
)
from streams.core.records import IDENTIFIER_PRECEDENCE, Event, RecordKind
from streams.core.settings import AccountSettings

_EVENT_KIND = RecordKind.EVENT


@dataclass(slots=True)
class StateKeys:
    """The identity links, catalog types and catalog accounts a batch reads."""

    identity: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    accounts: set[str] = field(default_factory=set)


def top_identifier(event: Event) -> tuple[str, str]:
    """The record's highest-precedence identifier (`ordered_identifiers(event)[0]`)."""
    identifiers = event.identifiers
    for namespace in IDENTIFIER_PRECEDENCE:
        value = identifiers.get(namespace)
        if value is not None:
            return namespace, value
    return ordered_identifiers(event)[0]


def state_keys(events: Iterable[Event]) -> StateKeys:
    """Every identity key (identifiers and aliases) and catalog key the events read."""
    keys = StateKeys()
    identity, types, accounts = keys.identity, keys.types, keys.accounts
    for event in events:
        account = event.account
        for namespace, value in event.identifiers.items():
            identity.append(identity_key(account, namespace, value))
        if event.alias:
            for namespace, value in event.alias.items():
                identity.append(identity_key(account, namespace, value))
        if event.kind is _EVENT_KIND and event.name is not None:
            types.append(type_key(account, event.name))
            accounts.add(account)
    return keys


def dedup_digests(
    events: Iterable[Event], settings: AccountSettings, get: Callable[[str, str], Any]
) -> tuple[list[str], list[str]]:
    """(digests to read, digests known absent) of the events' dedup keys.

    A digest depends on the profile, predicted from the links `get(table, key)` gives (read
    them first); a digest mispredicted (a link made earlier in the batch) is read on its
    own when decided. A new profile has no dedup key: with no link from the top
    identifier, the record makes a new profile named after it; a dedup key is only ever
    written for a profile a record resolved to, a profile is only ever made with its
    identifier's link (`resolve_links`), and links are never deleted: so no dedup key of
    that profile exists, and none is looked up (every first record of a user).
    """
    digests: list[str] = []
    unborn: list[str] = []
    for event in events:
        if event.idempotency_key is None and not settings.dedup_fingerprint:
            continue  # no dedup key (see dedup_key)
        key = dedup_key(event, settings)
        if key is None or not event.identifiers:
            continue
        namespace, value = top_identifier(event)
        link = get(IDENTITY_TABLE, identity_key(event.account, namespace, value))
        if link is None:
            unborn.append(dedup_digest(event.account, identifier_name(namespace, value), key))
            continue
        profile = link if isinstance(link, str) else identifier_name(namespace, value)
        digests.append(dedup_digest(event.account, profile, key))
    return digests, unborn
