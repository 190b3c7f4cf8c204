"""AIP-158 page tokens: opaque to clients, bound to the query they came from.

A token carries the last key of the page it ends and a digest of the list
request's parent and filter; a token from another query, or bytes that are
not a token, is refused with INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError


def _query_digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def encode_token(last_key: str, *query: str) -> str:
    payload = json.dumps({"k": last_key, "q": _query_digest(*query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str, *query: str) -> str | None:
    """Returns the last key of the previous page, or None for the first page."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key, digest = payload["k"], payload["q"]
        if not isinstance(key, str) or not isinstance(digest, str):
            raise TypeError("token fields have the wrong types")
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError, RecursionError) as exc:
        raise InvalidArgumentError(
            "page_token is not a token this server issued; start again without one",
            reason=reasons.INVALID_PAGE_TOKEN,
        ) from exc
    if digest != _query_digest(*query):
        raise InvalidArgumentError(
            "page_token belongs to a different query; keep parent and filter the same across pages",
            reason=reasons.INVALID_PAGE_TOKEN,
        )
    return key


def page_size(requested: int, default: int, maximum: int) -> int:
    if requested < 0:
        raise InvalidArgumentError(
            f"page_size must not be negative (got {requested})", reason=reasons.INVALID_PAGE_SIZE
        )
    if requested == 0:
        return default
    return min(requested, maximum)
