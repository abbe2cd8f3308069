"""The one CSV writer of the package: rows of dicts (one column per key of the first row), written atomically."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..data.file_safety import atomic_write


def write_csv(rows: list[dict], path) -> None:
    """``rows`` as CSV at ``path`` (header from ``rows[0]``; a missing key is an empty cell), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(buffer.getvalue(), newline=""))
