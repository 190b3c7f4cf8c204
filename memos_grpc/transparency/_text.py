"""Strict lexical pieces shared by the C2SP text formats: base64, decimals, the error with a stable reason.

Every format here is parsed by whole-string matching: standard base64 with padding and nothing else, ASCII
decimals without signs or leading zeros and within an explicit bound. Internal to the package.
"""

from __future__ import annotations

import base64
import re

from memos_grpc.primitives.grammar import Base64Error, decode_base64

#: 2**63 - 1: the bound on tree sizes, indexes and timestamps (C2SP tlog-checkpoint, tlog-cosignature).
MAX_INT63 = (1 << 63) - 1

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


class TransparencyFormatError(ValueError):
    """A text format or signature check refused its input; ``reason`` is stable UPPER_SNAKE."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


def strict_b64decode(text: str) -> bytes | None:
    """Standard base64 with padding and no whitespace, canonical (``grammar.decode_base64``); else None."""
    try:
        return decode_base64(text)
    except Base64Error:
        return None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def parse_decimal(text: str, maximum: int = MAX_INT63) -> int | None:
    """ASCII decimal, no sign, no leading zeros, at most ``maximum``; else None."""
    if not _DECIMAL.fullmatch(text):
        return None
    value = int(text)
    return value if value <= maximum else None


def has_control(text: str, *, allow_newline: bool) -> bool:
    """True if ``text`` holds a C0 control character (below U+0020), a newline counted only when not allowed."""
    return any(ord(c) < 0x20 and not (allow_newline and c == "\n") for c in text)


def utf8_text(data: str | bytes, what: str, error: type[TransparencyFormatError], reason: str) -> str:
    """``data`` as text: bytes must be UTF-8 without a BOM; a str must encode as UTF-8 (no lone surrogates)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{what} is not valid UTF-8: {exc}", reason=reason) from exc
    else:
        text = data
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise error(f"{what} is not valid UTF-8: {exc}", reason=reason) from exc
    if text.startswith("\ufeff"):
        raise error(f"{what} starts with a byte order mark", reason=reason)
    return text
