"""How a benchmark hands over its figures: one JSON line on stdout with --json, else an indented log for people."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any


def emit(result: dict[str, Any], as_json: bool, log: logging.Logger) -> None:
    """Print `result` as the last line of stdout (`--json`) or log it readably."""
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        log.info("%s", json.dumps(result, indent=1))
