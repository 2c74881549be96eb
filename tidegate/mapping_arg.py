"""The `--mapping FILE` option of `validate` and `import`: a CSV column mapping read up front."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tidegate.reports import print_json


def load_mapping_arg(args: argparse.Namespace) -> Any:
    """The CSV mapping of ``--mapping``, None, or the exit code 2 after saying why not."""
    if getattr(args, "mapping", None) is None:
        return None
    from connectors.files.csvmapping import MappingError, load_mapping

    try:
        return load_mapping(args.mapping)
    except (OSError, MappingError) as error:
        code = error.rejection.code.value if isinstance(error, MappingError) else "invalid_mapping"
        fatal = {"code": code, "message": str(error)}
        if getattr(args, "json", False):
            print_json({"status": "fail", "counts": {}, "warnings": [], "fatal": fatal})
        else:
            print(f"{args.mapping}: fatal: {code}: {error}", file=sys.stderr)
        return 2
