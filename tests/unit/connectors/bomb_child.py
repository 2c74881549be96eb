"""Runs one bomb scenario in its own process and prints its outcome and peak RSS as JSON.

Usage: python bomb_child.py MODE PATH
  scan    scan_archive(PATH) with the default limits
  open    stream the (only) member through iter_lines WITHOUT a scan first: a plan that
          trusts the archive, so only the limits enforced while reading can stop it
  upload  open_upload + iter_member_records over every member
"""

from __future__ import annotations

import json
import resource
import sys
from datetime import UTC, datetime
from pathlib import Path

from connectors.files.archive import (
    ArchiveLimits,
    ArchiveMember,
    ArchivePlan,
    detect_container,
    open_member,
    scan_archive,
    single_member_name,
)
from connectors.files.errors import MemberFailed, UploadRefused
from connectors.files.lines import iter_lines
from connectors.files.upload import iter_member_records, open_upload


def main(mode: str, path: Path) -> dict[str, object]:
    outcome: dict[str, object] = {"code": None, "message": None, "member_errors": [], "lines": 0}
    member_errors: list[str] = []
    try:
        if mode == "scan":
            with scan_archive(path) as plan:
                member_errors += [m.error.code for m in plan.members if m.error is not None]
        elif mode == "open":
            name = "bomb.jsonl" if path.name.endswith(".zip") else single_member_name(path.name)
            trusted = ArchiveMember(name, 1 << 40, index=0)
            plan = ArchivePlan(
                path,
                path.name,
                detect_container(path.name),
                ArchiveLimits(),
                path.stat().st_size,
                [trusted],
                [],
            )
            with plan, open_member(plan, name) as stream:
                for _ in iter_lines(stream):
                    outcome["lines"] = int(outcome["lines"]) + 1  # type: ignore[call-overload]
        elif mode == "upload":
            with open_upload(
                path,
                account="a",
                upload_id="u",
                received_at=datetime.now(UTC),
                dialect=None,
                trigger=False,
            ) as upload:
                for member in upload.members:
                    try:
                        for _ in iter_member_records(upload, member):
                            outcome["lines"] = int(outcome["lines"]) + 1  # type: ignore[call-overload]
                    except MemberFailed as failed:
                        member_errors.append(failed.rejection.code)
        else:
            raise SystemExit(f"unknown mode {mode}")
    except UploadRefused as refused:
        outcome["code"] = refused.rejection.code.value
        outcome["message"] = refused.message
    outcome["member_errors"] = [str(code) for code in member_errors]
    outcome["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return outcome


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
