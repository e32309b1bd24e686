"""CSV for spreadsheets: RFC 4180, UTF-8, and no formula injection.

Reused by every CSV export of the API. Rows end in CRLF and fields are quoted when they hold
a comma, quote or line break (RFC 4180). A text cell that starts with `=`, `+`, `-` or `@`
(or a tab or carriage return, which some spreadsheets skip first) would run as a formula
when the file is opened, so it gets a leading apostrophe (OWASP's advice). Actor names,
terminals and teams come from telemetry anyone with an ingest token can send, so this is not
hypothetical. Numbers are written as numbers and left alone; None is an empty cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

from aiohttp import web

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """A value as it goes into the file: neutralized if it is text a spreadsheet would run."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_DANGEROUS):
        return "'" + value
    return value


def render(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The whole document: a header row, then one line per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([cell(h) for h in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()


def response(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    filename: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A 200 with the document as an attachment named `filename` (plus any extra headers)."""
    return web.Response(
        body=render(header, rows).encode("utf-8"),
        headers={
            **(headers or {}),
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )
