"""Go's quoted strings (``strconv.Quote``, the ``%q`` verb), as logrus's text formatter writes
a value that needs quoting: ``\\a \\b \\f \\n \\r \\t \\v \\\\ \\"``, ``\\xNN`` bytes, ``\\uNNNN``
and ``\\UNNNNNNNN`` runes, ``\\NNN`` octal bytes (Go spec, "Rune literals" and "String
literals")."""

from __future__ import annotations

import re

_SIMPLE = {"a": b"\a", "b": b"\b", "f": b"\f", "n": b"\n", "r": b"\r", "t": b"\t",
           "v": b"\v", "\\": b"\\", '"': b'"', "'": b"'"}
_ESCAPE = re.compile(r'\\(?:([abfnrtv\\"\'])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})'
                     r"|U([0-9a-fA-F]{8})|([0-7]{3}))")


class GoQuoteError(ValueError):
    """Not a Go quoted string."""


def unquote(text: str) -> str:
    """The value of a Go double-quoted string literal (invalid UTF-8 bytes replaced)."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise GoQuoteError(f"not a quoted string: {text[:40]!r}")
    body, out, at = text[1:-1], bytearray(), 0
    for match in _ESCAPE.finditer(body):
        out += body[at:match.start()].encode()
        simple, hexbyte, rune4, rune8, octal = match.groups()
        if simple:
            out += _SIMPLE[simple]
        elif hexbyte:
            out.append(int(hexbyte, 16))
        elif octal:
            out.append(int(octal, 8) & 0xFF)
        else:
            out += chr(int(rune4 or rune8, 16)).encode("utf-8", "surrogatepass")
        at = match.end()
    rest = body[at:]
    if "\\" in rest.replace("\\\\", ""):
        raise GoQuoteError(f"an unknown escape in {text[:40]!r}")
    out += rest.encode()
    return out.decode("utf-8", errors="replace")
