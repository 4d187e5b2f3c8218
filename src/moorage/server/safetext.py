"""Names and free text that people give the control plane (token names, cluster descriptions, Git
user names): refused when they hold characters that change how a log line, a terminal or a page
shows them, or that git and HTTP cannot carry: control characters (NUL, CR, LF, ESC, …), line and
paragraph separators, and the bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E,
U+200F, U+061C) that make text read differently from what it is (CVE-2021-42574)."""

import unicodedata

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_NAMES = {"\x00": "NUL", "\t": "tab", "\n": "line feed", "\r": "carriage return", "\x1b": "escape"}


def _unsafe(ch: str) -> bool:
    return ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def problem(text: str, what: str) -> str | None:
    """Why `text` is refused (a sentence naming `what`, the character and where), or None."""
    for index, ch in enumerate(text):
        if _unsafe(ch):
            name = _NAMES.get(ch) or unicodedata.name(ch, "a control character").lower()
            return (
                f"{what} must not contain control characters (NUL, CR, LF, …) or bidirectional "
                f"controls; found U+{ord(ch):04X} ({name}) at position {index + 1}"
            )
    return None
