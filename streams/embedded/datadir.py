"""The data directory's health: format version, SQLite integrity and output lengths, and safe repairs."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from streams.embedded.sinks import OUTPUTS

DB_NAME = "tidegate.db"
FORMAT_FILE = "FORMAT"
# The data directory's layout: tables of schema.py and store.py, out/*.jsonl cut back to the
# lengths in `sinks`. Raise it when a change makes an older Tidegate misread the directory.
FORMAT_VERSION = 1
FORMAT_PREFIX = "tidegate-data-format "


class ProblemCode(StrEnum):
    FORMAT_NEWER = "format_newer"
    FORMAT_UNREADABLE = "format_unreadable"
    STATE_MISSING = "state_missing"
    STATE_CORRUPT = "state_corrupt"
    INDEX_CORRUPT = "index_corrupt"
    OUTPUT_MISSING = "output_missing"
    OUTPUT_SHORT = "output_short"
    OUTPUT_UNCOMMITTED = "output_uncommitted"
    FORMAT_MISSING = "format_missing"


@dataclass
class Problem:
    """One finding: `blocking` ones stop `run` and `import`; `repair` is set when it is safe."""

    code: ProblemCode
    message: str
    remedy: str
    blocking: bool = True
    repair: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def as_json(self) -> dict[str, object]:
        return {
            "code": self.code.value,
            "message": self.message,
            "remedy": self.remedy,
            "blocking": self.blocking,
            "repairable": self.repair is not None,
        }


class DataDirDamaged(RuntimeError):
    """The data directory cannot be used as it is; the message says what and how to recover."""

    def __init__(self, data_dir: Path, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [f"the data directory {data_dir} cannot be used:"]
        for problem in problems:
            lines.append(f"  {problem.code.value}: {problem.message}")
            lines.append(f"    to recover: {problem.remedy}")
        lines.append(f"  `tidegate doctor --data {data_dir}` checks it; nothing was changed.")
        super().__init__("\n".join(lines))


def read_format(data_dir: Path) -> int | None:
    """The format version written in the directory, None when none is; ValueError if garbled."""
    path = data_dir / FORMAT_FILE
    try:
        text = path.read_text("utf-8").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not text") from error
    if not text.startswith(FORMAT_PREFIX) or not text[len(FORMAT_PREFIX) :].isdigit():
        raise ValueError(f"{path} holds {text[:40]!r}, not {FORMAT_PREFIX!r}<number>")
    return int(text[len(FORMAT_PREFIX) :])


def write_format(data_dir: Path) -> None:
    path = data_dir / FORMAT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{FORMAT_PREFIX}{FORMAT_VERSION}\n", "utf-8")
    os.replace(tmp, path)


def _output_sizes(data_dir: Path) -> dict[str, int | None]:
    sizes: dict[str, int | None] = {}
    for name in OUTPUTS:
        try:
            sizes[name] = (data_dir / "out" / f"{name}.jsonl").stat().st_size
        except FileNotFoundError:
            sizes[name] = None
    return sizes


def _is_index_message(message: str) -> bool:
    # What integrity_check says of an index that disagrees with its table: REINDEX rebuilds
    # the index from the table, so nothing stored is lost.
    return (
        message.startswith("wrong # of entries in index")
        or (message.startswith("row ") and " missing from index " in message)
        or message.startswith("non-unique entry in index")
    )


def check_data_dir(data_dir: Path, *, thorough: bool = False) -> list[Problem]:
    """What is wrong with `data_dir` (nothing for a new or healthy one).

    `thorough` runs SQLite's `integrity_check` (every index against its table) instead of
    `quick_check`; the caller holds the directory's lock (no engine is writing).
    """
    problems: list[Problem] = []
    try:
        version = read_format(data_dir)
    except ValueError as error:
        problems.append(
            Problem(
                ProblemCode.FORMAT_UNREADABLE,
                str(error),
                f"write '{FORMAT_PREFIX}{FORMAT_VERSION}' into it if this directory was "
                "made by this version of Tidegate, or restore it from a backup",
            )
        )
        version = None
    if version is not None and version > FORMAT_VERSION:
        problems.append(
            Problem(
                ProblemCode.FORMAT_NEWER,
                f"it was written by a newer Tidegate (data format {version}; this one reads "
                f"format {FORMAT_VERSION})",
                "run the newer Tidegate that wrote it, or restore a backup taken before the "
                "upgrade; this version does not downgrade a data directory",
            )
        )
        return problems  # a newer layout: nothing else can be judged by this version
    sizes = _output_sizes(data_dir)
    had_state = (data_dir / FORMAT_FILE).exists() or any(sizes.values())
    db_path = data_dir / DB_NAME
    committed: dict[str, int] = {}
    if not db_path.exists():
        if had_state:
            problems.append(_state_missing(db_path, "is missing"))
        return problems
    try:
        conn = sqlite3.connect(str(db_path), isolation_level=None, timeout=30)
        try:
            tables = {
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "uploads" not in tables or "sinks" not in tables:
                if had_state:
                    problems.append(_state_missing(db_path, "holds no Tidegate tables"))
                return problems
            pragma = "integrity_check" if thorough else "quick_check"
            findings = [row[0] for row in conn.execute(f"PRAGMA {pragma}(20)")]
            if findings != ["ok"]:
                problems.append(_corrupt(db_path, findings, conn))
                return problems
            committed = dict(conn.execute("SELECT name, offset FROM sinks").fetchall())
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        problems.append(_corrupt(db_path, [str(error)], None))
        return problems
    problems += _check_outputs(data_dir, committed, sizes)
    if version is None:
        problems.append(
            Problem(
                ProblemCode.FORMAT_MISSING,
                f"no {FORMAT_FILE} file (a directory from before it was written)",
                "none needed: it is written at the next start",
                blocking=False,
                repair=lambda: write_format(data_dir),
            )
        )
    return problems


def _state_missing(db_path: Path, what: str) -> Problem:
    return Problem(
        ProblemCode.STATE_MISSING,
        f"the state database {db_path} {what}, but this directory held state before "
        "(outputs or a FORMAT file): starting afresh would forget every duplicate and "
        "identity seen so far",
        f"restore {db_path.name} (with its -wal file, if any) from a backup; to start "
        "afresh on purpose, move this directory away and use a new one",
    )


def _corrupt(db_path: Path, findings: list[str], conn: sqlite3.Connection | None) -> Problem:
    shown = "; ".join(findings[:3]) + (" ..." if len(findings) > 3 else "")
    if conn is not None and all(_is_index_message(f) for f in findings):

        def reindex() -> None:
            with sqlite3.connect(str(db_path), isolation_level=None, timeout=30) as fix:
                fix.execute("REINDEX")
            fix.close()

        return Problem(
            ProblemCode.INDEX_CORRUPT,
            f"an index of {db_path} disagrees with its table ({shown})",
            "`tidegate doctor --repair` rebuilds the indexes from the tables (no data lost)",
            repair=reindex,
        )
    return Problem(
        ProblemCode.STATE_CORRUPT,
        f"the state database {db_path} is damaged ({shown})",
        f"stop Tidegate, keep a copy of the damaged file, and restore {db_path.name} (with "
        "its -wal file) and out/ from the same backup; Tidegate never resets its dedup and "
        "identity state by itself",
    )


def _check_outputs(
    data_dir: Path, committed: dict[str, int], sizes: dict[str, int | None]
) -> list[Problem]:
    problems: list[Problem] = []
    for name in OUTPUTS:
        offset = committed.get(name, 0)
        size = sizes[name]
        path = data_dir / "out" / f"{name}.jsonl"
        if size is None and offset > 0:
            problems.append(
                Problem(
                    ProblemCode.OUTPUT_MISSING,
                    f"{path} is missing; {offset} bytes of it were committed",
                    f"restore {path.name} from a backup (its first {offset} bytes); the "
                    "records in it are not decided again, since their dedup state is kept",
                )
            )
        elif size is not None and size < offset:
            problems.append(
                Problem(
                    ProblemCode.OUTPUT_SHORT,
                    f"{path} holds {size} bytes but {offset} were committed",
                    f"restore {path.name} from a backup (its first {offset} bytes)",
                )
            )
        elif size is not None and size > offset:

            def cut(path: Path = path, offset: int = offset) -> None:
                os.truncate(path, offset)

            problems.append(
                Problem(
                    ProblemCode.OUTPUT_UNCOMMITTED,
                    f"{path} ends with {size - offset} bytes of a batch that never committed",
                    "none needed: they are cut at the next start and the batch decided again",
                    blocking=False,
                    repair=cut,
                )
            )
    return problems


def verify_data_dir(data_dir: Path) -> None:
    """Raises DataDirDamaged if `data_dir` must not be used (the caller holds its lock)."""
    problems = [p for p in check_data_dir(data_dir) if p.blocking]
    if problems:
        raise DataDirDamaged(data_dir, problems)


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` says the data directory's filesystem (or a file-size limit) is full."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    return isinstance(error, sqlite3.DatabaseError) and "full" in str(error)
