"""The bounds of every number the Memory Interchange Protocol carries, in one place.

Trust roots, envelopes and statements are checked against these constants as
they are parsed, so a number out of range makes its document malformed at
once instead of overflowing later (in DuckDB, in a protobuf field, in another
language's JSON parser). Python is the reference: verifiers in other languages
take these values as they are. docs/protocol.md ("Bounds") lists each with
its reason; a test keeps that table and this module in step.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: The largest integer every JSON implementation represents exactly (an IEEE 754 double holds 2^53 - 1).
MAX_SAFE_INTEGER = 2**53 - 1

#: A trust root's version: from 1; each update is exactly one more than the root in force.
MIN_TRUST_ROOT_VERSION = 1
MAX_TRUST_ROOT_VERSION = MAX_SAFE_INTEGER
#: A role's threshold: at least 1, at most its number of keys (1 for a role without keys), and at most this.
MIN_THRESHOLD = 1
MAX_THRESHOLD = 256
#: Keys one trust root may list (a role lists each of them at most once, so also its key count).
MAX_TRUST_ROOT_KEYS = 1024
#: A key's informational name, in characters.
MAX_KEY_NAME_CHARS = 256
#: Signatures on one envelope: each is tried against every trusted key, so the work they cause is bounded.
MAX_SIGNATURES = 256
#: A statement subject's size in bytes (the settings' entry limits are far lower; this bounds the JSON number).
MAX_SUBJECT_SIZE = MAX_SAFE_INTEGER
#: Counts a predicate reports (``redactions[].cubes``); informative, so a count out of range is left out.
MAX_COUNT = MAX_SAFE_INTEGER
#: Times (``expires``, ``notBefore``, ``notAfter``, ``revokedAt``, ``created``): RFC 3339 with a four-digit
#: year, in UTC within the range a protobuf Timestamp carries.
EARLIEST_TIME = datetime(1, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
#: Marketplace logs one trust root may name (``marketplaceLogs``), and the UTF-8 bytes of each one's C2SP
#: tlog-policy text: a policy of 64 witnesses with URLs fits several times over.
MAX_MARKETPLACE_LOGS = 16
MAX_LOG_POLICY_BYTES = 16 * 1024
#: The bundle format marker (``<major>[.<minor>]\n``) is read up to this many bytes.
MAX_MARKER_BYTES = 64


def is_integer_in(value: object, low: int, high: int) -> bool:
    """True when ``value`` is a JSON integer (not a bool, not a float) with ``low <= value <= high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
