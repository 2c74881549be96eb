"""Catalog limits: event types per account, property names per event type (stage CATALOG).

CleverTap: "the maximum number of event types per account is 512 … For each event type,
the maximum number of properties is 256." Limits come from `AccountSettings`.

* Only `kind=event` records are counted. Profile updates carry profile properties (not an
  event type's) and aliases carry none; both pass untouched.
* An event type is its exact name (case-sensitive, as normalization left it). A NEW name
  once the account has `max_event_types` types → `too_many_event_types`.
* Property names are the top-level keys of `properties` (nested keys belong to their
  top-level property; Zeta's url/resource fields are not properties). A record whose new
  names would push its type over `max_properties` distinct names → `too_many_properties`.
  Names the type already has are always fine, so a type at the limit keeps accepting
  records that use known names.
* All or nothing: a rejected record adds nothing — neither its type nor any of its new
  property names. Names are committed only when the record is accepted (not for a
  duplicate either), via `commit_catalog` after dedup; checking alone never writes.

State:

* table `catalog_types`: key `<account>` → int, how many event types the account has;
* table `catalog_props`: key `<account>\\x1f<event name>` → list of the type's property
  names in first-seen order. The key's presence is what makes the type known.

Both are keyed by account, so a Faust runtime runs the catalog stage keyed by account.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.records import Event, RecordKind
from streams.core.settings import AccountSettings
from streams.core.state import StateStore

CATALOG_TYPES_TABLE = "catalog_types"
CATALOG_PROPS_TABLE = "catalog_props"


def type_key(account: str, name: str) -> str:
    return f"{account}\x1f{name}"


@dataclass(slots=True, frozen=True)
class CatalogCheck:
    """The outcome of checking one record against the catalog, before anything is written."""

    rejection: Rejection | None = None
    new_type: bool = False
    new_properties: tuple[str, ...] = ()
    known_properties: int = 0

    @property
    def changes(self) -> bool:
        return self.rejection is None and (self.new_type or bool(self.new_properties))


NO_CHANGE = CatalogCheck()
_EVENT = RecordKind.EVENT


# Shared answers: a CatalogCheck is immutable, and most records add nothing to a type
# that has n names.
_NOTHING_NEW: dict[int, CatalogCheck] = {}
# The last stored name list seen per type key and its set, so a record of a known type
# does not rebuild the set. Stored lists are never changed in place (commit_catalog puts a
# new list), so the same list object means the same names.
_KNOWN_SETS: dict[str, tuple[list[str], int, frozenset[str]]] = {}
_KNOWN_SETS_MAX = 4096


def _known_set(key: str, known: list[str]) -> frozenset[str]:
    memo = _KNOWN_SETS.get(key)
    if memo is not None and memo[0] is known and memo[1] == len(known):
        return memo[2]
    names = frozenset(known)
    if len(_KNOWN_SETS) >= _KNOWN_SETS_MAX:
        _KNOWN_SETS.clear()
    _KNOWN_SETS[key] = (known, len(known), names)
    return names


def check_catalog(event: Event, store: StateStore, settings: AccountSettings) -> CatalogCheck:
    """Pure read: would this record fit the catalog limits, and what would it add?"""
    if event.kind is not _EVENT or event.name is None:
        return NO_CHANGE
    name = event.name
    key = f"{event.account}\x1f{name}"
    stored = store.get(CATALOG_PROPS_TABLE, key)
    new_type = stored is None
    if new_type:
        count = store.get(CATALOG_TYPES_TABLE, event.account)
        types = count if isinstance(count, int) else 0
        if types >= settings.max_event_types:
            return CatalogCheck(
                Rejection(
                    ErrorCode.TOO_MANY_EVENT_TYPES,
                    f"the account already has {types} event types (limit "
                    f"{settings.max_event_types}); {name!r} would be a new one",
                    Stage.CATALOG,
                    "name",
                ),
                new_type=True,
            )
    if type(stored) is list:
        known: list[str] = stored
        known_set = _known_set(key, stored)
        # Nothing new (the common case): within the limit unless it already was over.
        if known_set.issuperset(event.properties) and len(known) <= settings.max_properties:
            check = _NOTHING_NEW.get(len(known))
            if check is None:
                check = _NOTHING_NEW[len(known)] = CatalogCheck(None, False, (), len(known))
            return check
    else:
        known = stored if isinstance(stored, list) else []
        known_set = frozenset(known)
    new_properties = tuple(key for key in event.properties if key not in known_set)
    total = len(known) + len(new_properties)
    if total > settings.max_properties:
        return CatalogCheck(
            Rejection(
                ErrorCode.TOO_MANY_PROPERTIES,
                f"event type {name!r} would have {total} property names (limit "
                f"{settings.max_properties}; it has {len(known)}, this record adds "
                f"{len(new_properties)})",
                Stage.CATALOG,
                new_properties[0] if new_properties else None,
            ),
            new_type=new_type,
            new_properties=new_properties,
            known_properties=len(known),
        )
    return CatalogCheck(None, new_type, new_properties, len(known))


def commit_catalog(event: Event, check: CatalogCheck, store: StateStore) -> None:
    """Adds an accepted record's new type / property names. Does nothing for a rejection."""
    if not check.changes or event.name is None:
        return
    key = type_key(event.account, event.name)
    stored = store.get(CATALOG_PROPS_TABLE, key)
    known: list[str] = list(stored) if isinstance(stored, list) else []
    if stored is None:
        count = store.get(CATALOG_TYPES_TABLE, event.account)
        store.put(CATALOG_TYPES_TABLE, event.account, (count if isinstance(count, int) else 0) + 1)
    known_set = set(known)
    known.extend(name for name in check.new_properties if name not in known_set)
    store.put(CATALOG_PROPS_TABLE, key, known)
