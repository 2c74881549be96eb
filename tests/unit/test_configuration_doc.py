"""Every `TIDEGATE_*` variable named in the sources is in docs/CONFIGURATION.md's table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("streams", "connectors", "tidegate")
QUOTED = re.compile(r"""["'](TIDEGATE_[A-Z0-9_]+)["']""")
# quoted TIDEGATE_ names that are not settings
NOT_SETTINGS: frozenset[str] = frozenset()


def variables_in_sources() -> dict[str, str]:
    """Each quoted variable name -> the first source file naming it."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in QUOTED.findall(path.read_text(encoding="utf-8")):
                found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_the_sources_name_variables_at_all() -> None:
    # the scan must find something, or the check below passes vacuously
    assert {"TIDEGATE_DATA", "TIDEGATE_HTTP_PORT", "TIDEGATE_SMTP_HOST"} <= set(
        variables_in_sources()
    )


def test_every_variable_in_the_sources_is_documented() -> None:
    doc = (ROOT / "docs" / "CONFIGURATION.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(TIDEGATE_[A-Z0-9_]+)`", doc))
    missing = {
        name: where
        for name, where in variables_in_sources().items()
        if name not in documented and name not in NOT_SETTINGS
    }
    assert not missing, f"not in docs/CONFIGURATION.md: {missing}"
