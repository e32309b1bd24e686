"""CSV for spreadsheets: RFC 4180, UTF-8, and no formula injection.

A cell whose text starts with `=`, `+`, `-`, `@` (or a tab or carriage return, which some
spreadsheets strip first) would be run as a formula when opened; such text cells get a
leading apostrophe (OWASP's advice). Numbers are written as numbers and left alone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from aiohttp import web

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_DANGEROUS):
        return "'" + value
    return "" if value is None else value


def render(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([cell(h) for h in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()


def response(
    header: Sequence[str], rows: Iterable[Sequence[object]], filename: str
) -> web.Response:
    return web.Response(
        body=render(header, rows).encode("utf-8"),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )
