"""The two ways a file connector gives up: on the whole upload, or on one member.

Both carry a core `Rejection` (a stable code, a message and a stage), so callers report
them exactly like record-level rejections.

* `UploadRefused` — the whole upload fails (unsafe archive, bad manifest, unsupported file
  type of a plain upload, unreadable archive). Nothing of the upload should be processed;
  `open_upload` raises it before any record is read. It is only raised later (from
  `iter_member_records`) if the archive changed between the scan and the read so that the
  byte limits are crossed while reading, or when the one member of a plain or single
  compressed file fails as a member would (an unreadable CSV header, a CleverTap document
  that is not `{"d": [...]}`): that member is the whole upload.
* `MemberFailed` — one member of an archive fails (unsupported extension, unknown dialect,
  unreadable or corrupt member, a CleverTap document that is not `{"d": [...]}`, an
  unreadable CSV header). The upload goes to `warning`; the other members proceed. It is
  NOT a subclass of `UploadRefused`, so `except UploadRefused` never swallows it.
"""

from __future__ import annotations

from streams.core.errors import Rejection


class ConnectorError(Exception):
    """Base for connector failures that carry a `Rejection`."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection

    @property
    def message(self) -> str:
        return self.rejection.message


class UploadRefused(ConnectorError):
    """The whole upload (or request) is refused."""


class MemberFailed(ConnectorError):
    """One member of an upload failed; the other members proceed."""

    def __init__(self, rejection: Rejection, member: str | None = None) -> None:
        super().__init__(rejection)
        self.member = member
