"""The protocol's strict grammar in one place: base64, and where its other rules live (docs/protocol.md,
"The strict grammar").

Every implementation must accept exactly the same bytes, or an attacker picks the input the weaker one accepts.
The rules, each with its one function:

- JSON: ``memos_grpc.interchange.ijson.loads`` (I-JSON: UTF-8 without a BOM, no duplicate names, no lone
  surrogates, no NaN or Infinity, integers only, within +-(2^53 - 1)).
- Times: ``memos_grpc.primitives.canonical.parse_time`` (one RFC 3339 profile).
- base64: ``decode_base64`` below.
- Ed25519 public keys: ``memos_grpc.primitives.keys.check_public_key`` (canonical, not of small order).
- Patterns: every regular expression over protocol data is applied with ``fullmatch``.
"""

from __future__ import annotations

import base64
import binascii
import re

_STANDARD = re.compile(r"[A-Za-z0-9+/]*")
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]*")


class Base64Error(ValueError):
    """Text that is not base64 under the protocol's rule."""


def decode_base64(text: object, *, dsse: bool = False) -> bytes:
    """The bytes ``text`` encodes; raises Base64Error.

    The rule: the standard alphabet (RFC 4648 section 4) with its ``=`` padding, no whitespace or other
    character, and canonical, so that the unused bits of the last character are zero (a text that decodes to
    the same bytes as another is refused). A DSSE envelope's ``payload`` and ``sig`` (``dsse=True``) may also use
    the URL-safe alphabet (section 5), never both alphabets in one text, and may leave the padding out; padding
    that is present must be exactly right.
    """
    if not isinstance(text, str):
        raise Base64Error("base64 must be a string")
    body = text.rstrip("=")
    padding = len(text) - len(body)
    if _STANDARD.fullmatch(body):
        standard = body
    elif dsse and _URL_SAFE.fullmatch(body):
        standard = body.replace("-", "+").replace("_", "/")
    elif dsse and _URL_SAFE.fullmatch(body.replace("+", "-").replace("/", "_")):
        raise Base64Error("base64 mixes the standard and URL-safe alphabets")
    else:
        raise Base64Error("base64 holds a character outside its alphabet (whitespace and '=' inside included)")
    missing = -len(body) % 4
    if len(body) % 4 == 1:
        raise Base64Error("base64 text cannot be one character longer than a multiple of four")
    if padding != missing and not (dsse and padding == 0):
        raise Base64Error(f"base64 padding is wrong: {missing} '=' needed, {padding} given")
    try:
        data = base64.b64decode(standard + "=" * missing, validate=True)
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the checks above leave nothing for it
        raise Base64Error(f"not base64: {exc}") from exc
    # Non-zero unused bits in the last character decode, but to bytes that encode differently: refuse them.
    if base64.b64encode(data).decode().rstrip("=") != standard:
        raise Base64Error("base64 has non-zero unused bits in its last character (not the canonical encoding)")
    return data
