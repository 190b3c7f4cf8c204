"""Trust root update vectors: rotation signed by old and new admin keys, thresholds, rollback and freeze.

They also pin ``marketplaceLogs``, the marketplace logs a buyer trusts as C2SP tlog-policy texts, read strictly.

Each vector gives the current root (trusted as it is: a client's anchor) and a proposed root; the proposal must be
signed by a threshold of the current admin keys and of its own, be the next version, stay within the protocol's
bounds (docs/protocol.md, "Bounds") and not be expired.
"""

from __future__ import annotations

import json
from datetime import datetime

from tools.vectors.common import (
    DAY,
    KEY1,
    KEY2,
    KEY3,
    KEY4,
    NOW,
    Json,
    VectorKey,
    b64,
    canonical,
    envelope_json,
    invalid,
    rfc3339,
    signed,
    valid,
    vector,
)
from tools.vectors.tlog import LOG, vkey

TRUST_ROOT_TYPE = "https://memos-grpc.dev/TrustRoot/v1"
T = "application/vnd.memos.trustroot+json"
YEAR = 365 * DAY


def root(
    version: int,
    admin: tuple[VectorKey, ...],
    threshold: int = 1,
    *,
    node: tuple[VectorKey, ...] = (KEY4,),
    expires: datetime = NOW + YEAR,
    revoked: dict[VectorKey, datetime] | None = None,
    node_threshold: int = 1,
    extra_roles: Json | None = None,
    marketplace_logs: list[Json] | None = None,
) -> bytes:
    """A trust root payload: ``admin`` keys with ``threshold``, ``node`` keys with ``node_threshold``."""
    revoked = revoked or {}
    keys: Json = {}
    for key in (*admin, *node):
        keys[key.key_id] = {"keytype": "ed25519", "public": b64(key.public_key), "name": key.label}
        if key in revoked:
            keys[key.key_id]["revokedAt"] = rfc3339(revoked[key])
    roles = {
        "admin": {"keyids": sorted(k.key_id for k in admin), "threshold": threshold},
        "node": {"keyids": sorted(k.key_id for k in node), "threshold": node_threshold},
        **(extra_roles or {}),
    }
    document: Json = {"_type": TRUST_ROOT_TYPE, "version": version, "expires": rfc3339(expires), "keys": keys}
    document["roles"] = roles
    if marketplace_logs is not None:
        document["marketplaceLogs"] = marketplace_logs
    return canonical(document)


#: The log of tools/vectors/tlog.py (key 1) with one witness (key 3) as its quorum.
LOG_POLICY = f"log {vkey(LOG, 1, KEY1)}\nwitness w {vkey('witness.example', 4, KEY3)}\nquorum w\n"


#: 257 keys, one more than a role's threshold may count (their seeds: "memos-vector-many-<n>").
MANY_KEYS = tuple(VectorKey(f"memos-vector-many-{n}") for n in range(257))


def _with_expires(payload: bytes, expires: str) -> bytes:
    """``payload`` with an ``expires`` string no datetime can hold (a time past 9999 once in UTC)."""
    document = json.loads(payload)
    document["expires"] = expires
    return canonical(document)


def _current(payload: bytes, *keys: VectorKey) -> str:
    return signed(T, payload, *keys)


def _case(case: str, description: str, current: str, proposed: str, expected: Json) -> Json:
    inputs = {"now": rfc3339(NOW), "current_root": current, "proposed_root": proposed}
    return vector("trust_root_update", case, description, inputs, expected)


def trust_root_vectors() -> list[Json]:
    v1 = _current(root(1, (KEY1,)), KEY1)
    v3 = _current(root(3, (KEY1,)), KEY1)
    rotated = root(2, (KEY2,))
    trio = _current(root(1, (KEY1, KEY2, KEY3), 2), KEY1, KEY2)
    trio_next = root(2, (KEY1, KEY2, KEY3), 2)
    twice = KEY1.signature(T, trio_next)
    added_node = root(2, (KEY1,), node=(KEY4, KEY3))
    flipped = bytearray(added_node)
    flipped[added_node.index(b"ed25519")] ^= 0x20
    return [
        _case(
            "rotation-valid",
            "Admin key 1 hands over to admin key 2: version 2 is signed by both.",
            v1,
            signed(T, rotated, KEY1, KEY2),
            valid(version=2),
        ),
        _case(
            "rotation-old-only",
            "The rotation is signed by the old admin key only.",
            v1,
            signed(T, rotated, KEY1),
            invalid("TRUST_ROOT_THRESHOLD_NOT_MET"),
        ),
        _case(
            "rotation-new-only",
            "The rotation is signed by the new admin key only.",
            v1,
            signed(T, rotated, KEY2),
            invalid("TRUST_ROOT_THRESHOLD_NOT_MET"),
        ),
        _case(
            "add-node-key-valid",
            "The same admin key adds a node key in version 2.",
            v1,
            signed(T, added_node, KEY1),
            valid(version=2),
        ),
        _case(
            "flipped-payload-byte",
            "One byte of the proposed root changed after the admin key signed it.",
            v1,
            envelope_json(T, bytes(flipped), [KEY1.signature(T, added_node)]),
            invalid("TRUST_ROOT_THRESHOLD_NOT_MET"),
        ),
        _case(
            "rollback-lower-version",
            "Version 2 proposed while version 3 is current, properly signed.",
            v3,
            signed(T, root(2, (KEY1,)), KEY1),
            invalid("TRUST_ROOT_ROLLBACK"),
        ),
        _case(
            "rollback-same-version",
            "Version 3 proposed while version 3 is current, properly signed.",
            v3,
            signed(T, root(3, (KEY1,), node=(KEY4, KEY3)), KEY1),
            invalid("TRUST_ROOT_ROLLBACK"),
        ),
        _case(
            "expired",
            "Version 2 expired a day before now (freeze).",
            v1,
            signed(T, root(2, (KEY1,), expires=NOW - DAY), KEY1),
            invalid("TRUST_ROOT_EXPIRED"),
        ),
        _case(
            "expires-at-now",
            "Version 2 expires exactly now: a root is valid strictly before its expiry.",
            v1,
            signed(T, root(2, (KEY1,), expires=NOW), KEY1),
            invalid("TRUST_ROOT_EXPIRED"),
        ),
        _case(
            "two-of-three-valid",
            "Admin threshold 2 of 3, old and new: two distinct admin keys sign.",
            trio,
            signed(T, trio_next, KEY1, KEY3),
            valid(version=2),
        ),
        _case(
            "two-of-three-one-key-twice",
            "Admin threshold 2 of 3: one key signs twice.",
            trio,
            envelope_json(T, trio_next, [twice, twice]),
            invalid("TRUST_ROOT_THRESHOLD_NOT_MET"),
        ),
        _case(
            "revoked-admin-signs",
            "The current root revoked admin key 1 yesterday; its signature no longer counts.",
            _current(root(1, (KEY1, KEY2), revoked={KEY1: NOW - DAY}), KEY2),
            signed(T, root(2, (KEY1, KEY2)), KEY1),
            invalid("TRUST_ROOT_THRESHOLD_NOT_MET"),
        ),
        _case(
            "wrong-payload-type",
            "The proposed root is signed under payloadType application/json.",
            v1,
            signed("application/json", added_node, KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "version-skipped",
            "Version 3 proposed while version 1 is current: each update is exactly the next version.",
            v1,
            signed(T, root(3, (KEY1,)), KEY1),
            invalid("TRUST_ROOT_VERSION_SKIPPED"),
        ),
        _case(
            "version-past-safe-integer",
            "Version 2^53 after 2^53 - 1: past the largest JSON-safe integer (MAX_TRUST_ROOT_VERSION).",
            _current(root(2**53 - 1, (KEY1,)), KEY1),
            signed(T, root(2**53, (KEY1,)), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "version-int64-max",
            "Version 2^63 - 1 proposed while version 1 is current: out of bounds, not merely skipping.",
            v1,
            signed(T, root(2**63 - 1, (KEY1,)), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "node-threshold-int32-overflow",
            "The node role's threshold is 2^31, over its one key and over MAX_THRESHOLD (256).",
            v1,
            signed(T, root(2, (KEY1,), node_threshold=2**31), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "node-threshold-over-keys",
            "The node role's threshold (2) exceeds its keys (1): no bundle could ever meet it.",
            v1,
            signed(T, root(2, (KEY1,), node_threshold=2), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "unknown-role",
            "A role named auditor, which the protocol does not define.",
            v1,
            signed(T, root(2, (KEY1,), extra_roles={"auditor": {"keyids": [KEY4.key_id], "threshold": 1}}), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "expires-past-9999",
            "Expires 9999-12-31T23:59:59-01:00: after LATEST_TIME once in UTC.",
            v1,
            signed(T, _with_expires(root(2, (KEY1,)), "9999-12-31T23:59:59-01:00"), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "marketplace-log-valid",
            "Version 2 names a marketplace log by its tlog-policy: log key, one witness, quorum.",
            v1,
            signed(T, root(2, (KEY1,), marketplace_logs=[{"policy": LOG_POLICY}]), KEY1),
            valid(version=2),
        ),
        _case(
            "marketplace-log-policy-unparsable",
            "The log policy has no quorum line (POLICY_QUORUM_INVALID): the root is malformed.",
            v1,
            signed(T, root(2, (KEY1,), marketplace_logs=[{"policy": LOG_POLICY.replace("quorum w\n", "")}]), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "marketplace-log-unknown-member",
            "A marketplace log carries a member besides policy: refused, never ignored.",
            v1,
            signed(T, root(2, (KEY1,), marketplace_logs=[{"policy": LOG_POLICY, "url": "https://x"}]), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "marketplace-logs-empty",
            "marketplaceLogs is an empty list: a root without logs leaves the member out.",
            v1,
            signed(T, root(2, (KEY1,), marketplace_logs=[]), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "marketplace-logs-one-origin-twice",
            "Two marketplace logs share one origin, so a grant's logOrigin would not pick one policy.",
            v1,
            signed(T, root(2, (KEY1,), marketplace_logs=[{"policy": LOG_POLICY}] * 2), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "admin-threshold-over-keys",
            "A properly signed proposal whose admin threshold (2) exceeds its admin keys (1).",
            v1,
            signed(T, root(2, (KEY1,), 2), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        # Every number at the edges of its bound (docs/protocol.md, "Bounds").
        _case(
            "version-zero",
            "Version 0 proposed while version 1 is current: below MIN_TRUST_ROOT_VERSION, not merely a rollback.",
            v1,
            signed(T, root(0, (KEY1,)), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "version-max-safe-integer-valid",
            "Version 2^53 - 1 after 2^53 - 2: MAX_TRUST_ROOT_VERSION itself is a version.",
            _current(root(2**53 - 2, (KEY1,)), KEY1),
            signed(T, root(2**53 - 1, (KEY1,)), KEY1),
            valid(version=2**53 - 1),
        ),
        _case(
            "admin-threshold-zero",
            "The admin role's threshold is 0: it would trust unsigned updates.",
            v1,
            signed(T, root(2, (KEY1,), 0), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "node-threshold-negative",
            "The node role's threshold is -1.",
            v1,
            signed(T, root(2, (KEY1,), node_threshold=-1), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "role-without-keys-threshold-2",
            "The publisher role has no keys and threshold 2: a role without keys takes threshold 1.",
            v1,
            signed(T, root(2, (KEY1,), extra_roles={"publisher": {"keyids": [], "threshold": 2}}), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
        _case(
            "node-threshold-over-max",
            "257 node keys and node threshold 257: within the role's keys, one past MAX_THRESHOLD (256).",
            v1,
            signed(T, root(2, (KEY1,), node=MANY_KEYS, node_threshold=257), KEY1),
            invalid("TRUST_ROOT_MALFORMED"),
        ),
    ]
