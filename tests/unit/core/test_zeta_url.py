"""Zeta `url`: the regex fast path decides exactly as the `urlsplit` rule it shortcuts."""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.dialects.zeta import MAX_RESOURCE_CHARS, _url
from streams.core.errors import Rejection


def _by_urlsplit(value: str) -> str | None:
    """The rule as DESIGN.md states it: an absolute http(s) URL, trimmed."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > MAX_RESOURCE_CHARS:
        return None
    return value.strip()


_URLISH = st.builds(
    lambda scheme, rest, pad: f"{pad}{scheme}{rest}{pad}",
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "http:/", "", "https://["]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
    | st.text(alphabet="ab/?#[]:@.\t\r\n é\u0085\x80", max_size=20),
    st.sampled_from(["", " ", "\t", "\u00a0"]),
)


@settings(max_examples=3000, deadline=None)
@given(_URLISH)
def test_url_fast_path_decides_as_urlsplit(value: str) -> None:
    result = _url(value)  # never raises: a URL urlsplit refuses is a rejection
    got = None if isinstance(result, Rejection) else result
    expected = _by_urlsplit(value)
    assert got == expected
