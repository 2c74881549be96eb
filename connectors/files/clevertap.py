"""A CleverTap upload payload stored as a file: one JSON document `{"d": [...]}`.

Unlike the JSON-lines dialects the member is a single document (usually pretty-printed),
so it is parsed whole — with a size cap, `MAX_PAYLOAD_BYTES` = 64 MiB — and framed into
one item per element of `d`: `number` is the element's 1-based position in `d` (what
feedback files and `tidegate validate` report as its "line"), `raw` its compact JSON
(`orjson.dumps`). Whether an element is a valid record is the core's decision; an element
that is not an object is still framed.

The document must be strict JSON: the `// ...` comment in CleverTap's documented example
is an annotation, not something their API accepts. Bytes that are not UTF-8 inside its
strings spoil only the elements that hold them: such an element is framed with its bytes
as they came, and the core rejects it as `invalid_encoding`, as it rejects such a JSON
line. A member that is larger than the cap, is not JSON, or is not an object with a list
`d` fails as a whole:
`MemberFailed(Rejection(INVALID_PAYLOAD, ...))` — the member fails, the upload continues.
The 1000-records-per-call limit belongs to the HTTP API, not to files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from connectors.files.errors import MemberFailed
from streams.core.errors import ErrorCode, Rejection, Stage

MAX_PAYLOAD_BYTES = 64 << 20  # 64 MiB
_READ_BYTES = 1 << 20


@dataclass(slots=True)
class PayloadItem:
    number: int  # 1-based position in `d`
    raw: bytes  # orjson.dumps(element)


def _failed(message: str, member: str | None) -> MemberFailed:
    return MemberFailed(Rejection(ErrorCode.INVALID_PAYLOAD, message, Stage.UPLOAD), member)


def read_capped(stream: BinaryIO, max_bytes: int) -> bytes | None:
    """The whole stream, or None as soon as it is longer than `max_bytes`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(_READ_BYTES, max_bytes + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return None
    return b"".join(chunks)


def iter_clevertap_items(
    stream: BinaryIO,
    *,
    name: str | None = None,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Iterator[PayloadItem]:
    """Yields the elements of a `{"d": [...]}` document; `name` is used in messages."""
    label = name or "the payload"
    data = read_capped(stream, max_bytes)
    if data is None:
        raise _failed(f"{label} is larger than {max_bytes} bytes", name)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        document: Any = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        document = _load_keeping_bad_bytes(data)
        if document is None:
            raise _failed(f"{label} is not a JSON document: {error}", name) from None
    del data
    if not isinstance(document, dict) or not isinstance(document.get("d"), list):
        raise _failed(f'{label} is not a CleverTap payload: expected {{"d": [...]}}', name)
    records: list[Any] = document["d"]
    del document
    dumps = orjson.dumps
    for position in range(len(records)):
        element = records[position]
        records[position] = None  # let each element go once it is framed
        try:
            raw = dumps(element)
        except orjson.JSONEncodeError:  # a bad byte kept by `_load_keeping_bad_bytes`
            raw = _dump_keeping_bad_bytes(element)
        yield PayloadItem(position + 1, raw)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load_keeping_bad_bytes(data: bytes) -> Any | None:
    """The document when bytes that are not UTF-8 are its only fault, each kept as a lone
    surrogate (the standard library's parser takes those, orjson does not); else None."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return None  # valid UTF-8: the JSON itself is broken
    try:
        return json.loads(data.decode("utf-8", "surrogateescape"), parse_constant=_refuse_constant)
    except ValueError:
        return None


def _dump_keeping_bad_bytes(element: Any) -> bytes:
    """Compact JSON of an element from `_load_keeping_bad_bytes`, its bad bytes restored."""
    text = json.dumps(element, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "surrogateescape")
