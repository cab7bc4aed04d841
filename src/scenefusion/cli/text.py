"""Untrusted text on the terminal: class labels, file names and the reasons that quote them.

Such text comes from folder names, CSV cells and saved bundles, so it may hold terminal
escapes (``\\x1b[31m`` recolours or rewrites the screen), other control characters, bidi
overrides that reorder what a line seems to say, or rich markup (``[bold]``). Every place
the CLI prints it goes through :func:`shown`: control characters appear as their Python
escapes and markup as written. Files (CSV, reports, bundle.json) keep the text verbatim.
"""

from __future__ import annotations

import logging
import re

from rich.markup import escape

#: C0 controls but newline and tab, DEL, C1 controls, and the bidi embeddings / overrides /
#: isolates (U+202A-U+202E, U+2066-U+2069)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plain(value: object) -> str:
    """``value`` as text whose control characters are shown as escapes (``\\x1b``), for
    output that is never read as markup (log lines)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))


def shown(value: object) -> str:
    """``value`` as rich console text that shows exactly what it holds: control characters as
    escapes, markup as written."""
    return escape(plain(value))


class PlainFormatter(logging.Formatter):
    """Log lines with their control characters shown as escapes: a logged label or file name
    reaches the terminal like a printed one."""

    def format(self, record: logging.LogRecord) -> str:
        return plain(super().format(record))
