"""Text from data files and users, made safe for where it is shown: the terminal, Markdown, JSON in HTML.

Labels, item ids and tokens come from files anyone can write. Printed raw they can carry terminal escape
sequences (colours, cursor moves, window titles, hyperlinks); copied raw into Markdown they can carry HTML
that a viewer passes through (``<script>``, ``<img onerror>``). These functions keep the text readable
and make it inert.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

# ESC-initiated sequences: CSI (ESC [ ... final byte), OSC/DCS/PM/APC/SOS strings up to BEL or ESC \,
# and two-character escapes; also their 8-bit C1 forms (CSI = U+009B, OSC = U+009D ...).
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)"
    r"|\x1b[@-Z\\-_]?",
    re.DOTALL,
)
# Inline Markdown punctuation that can start emphasis, code, links, strike-through, table cells or raw HTML
# (line-start markers such as # + - cannot occur inside a table cell or link text, where this text goes).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def terminal_text(value: Any) -> str:
    """``value`` as one line of plain text for a terminal: escape sequences removed, other control and
    direction-changing characters shown as ``\\xNN``/``\\uNNNN``."""
    text = _ESCAPES.sub("", str(value))
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def markdown_text(value: Any) -> str:
    """``value`` as inline Markdown that renders as exactly this text: HTML-significant characters become
    entities and Markdown punctuation is backslash-escaped, so nothing in it is markup."""
    text = terminal_text(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def markdown_code(value: Any) -> str:
    """``value`` as an inline code span (shown literally: Markdown does not read HTML inside code spans)."""
    text = terminal_text(value)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def inert_json(value: Any) -> str:
    """Compact ASCII JSON with no NaN and no raw ``<``, ``>`` or ``&`` (escaped as ``\\u003c``...): safe inside a
    <script> element, and no markup for a client that sniffs it as HTML."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
