"""Every number the interchange protocol carries is bounded: table-driven over named cases, docs in step.

Trust root documents, envelopes, statements and predicates get values at and
past each bound of ``memos_grpc.primitives.bounds``; in range parses, out of
range is the document's own malformed reason (never an overflow later). The
last test checks that docs/protocol.md's table names every bound with its value.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from memos_grpc.errors import BundleError, TrustRootError
from memos_grpc.interchange.bundle import BundleReport
from memos_grpc.interchange.dsse import Envelope, EnvelopeFormatError, parse_envelope
from memos_grpc.interchange.report import verification_message
from memos_grpc.interchange.statement import PREDICATE_TYPE, STATEMENT_TYPE, Statement, parse_statement
from memos_grpc.interchange.trust import TRUST_ROOT_PAYLOAD_TYPE, TRUST_ROOT_TYPE, Role, TrustRoot, parse_trust_root
from memos_grpc.interchange.trust_store import wire_form
from memos_grpc.primitives import bounds
from memos_grpc.primitives.canonical import canonical_json, parse_time
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.transparency.cosignature import CosignatureVerifier
from memos_grpc.transparency.note import NoteVerifier

ADMIN = SigningKey.from_seed(b"\x01" * 32)
NODE = SigningKey.from_seed(b"\x02" * 32)
Document = dict[str, Any]


def root_document() -> Document:
    """A valid trust root: one admin key, one node key, empty publisher and marketplace roles."""
    return {
        "_type": TRUST_ROOT_TYPE,
        "version": 2,
        "expires": "2030-01-01T00:00:00Z",
        "keys": {k.key_id: {"keytype": "ed25519", "public": k.public_key_b64} for k in (ADMIN, NODE)},
        "roles": {
            "admin": {"keyids": [ADMIN.key_id], "threshold": 1},
            "node": {"keyids": [NODE.key_id], "threshold": 1},
            "publisher": {"keyids": [], "threshold": 1},
            "marketplace": {"keyids": [], "threshold": 1},
        },
    }


def setting(*path: str | int, value: Any) -> Callable[[Document], None]:
    def change(document: Document) -> None:
        target: Any = document
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def node_key(field: str, value: Any) -> Callable[[Document], None]:
    return lambda document: document["keys"][NODE.key_id].__setitem__(field, value)


def many_keys(count: int) -> Callable[[Document], None]:
    # The count is checked before any key is: fillers need not be real keys.
    def change(document: Document) -> None:
        for n in range(count - len(document["keys"])):
            document["keys"][f"{n:064x}"] = {"keytype": "ed25519", "public": ""}

    return change


def unknown_role(document: Document) -> None:
    document["roles"]["auditor"] = {"keyids": [NODE.key_id], "threshold": 1}


def log_policy(origin: str = "market.example/log", *, witness: bool = True) -> str:
    """A C2SP tlog-policy: the log ``origin`` (key from a fixed seed) and, with ``witness``, one witness."""
    log = NoteVerifier.for_key(origin, SigningKey.from_seed(origin.encode().ljust(32, b"\0")[:32]).public_key)
    if not witness:
        return f"log {log.vkey()}\nquorum none\n"
    cosigner = CosignatureVerifier.for_key("witness.example", SigningKey.from_seed(b"\x03" * 32).public_key)
    return f"log {log.vkey()}\nwitness w {cosigner.vkey()}\nquorum w\n"


def padded_policy(size: int) -> str:
    """A valid policy of exactly ``size`` bytes (a comment fills it up)."""
    text = log_policy()
    return text + "#" + "x" * (size - len(text) - 2) + "\n"


def logs(*items: Any) -> Callable[[Document], None]:
    return setting("marketplaceLogs", value=list(items))


OK = ""
MALFORMED = "TRUST_ROOT_MALFORMED"
#: (case, change to the valid document, expected reason; "" parses).
ROOT_CASES: list[tuple[str, Callable[[Document], None], str]] = [
    ("version 1", setting("version", value=1), OK),
    ("version 2^53-1", setting("version", value=2**53 - 1), OK),
    ("version 0", setting("version", value=0), MALFORMED),
    ("version -1", setting("version", value=-1), MALFORMED),
    ("version 2^53", setting("version", value=2**53), MALFORMED),
    ("version 2^63-1", setting("version", value=2**63 - 1), MALFORMED),
    ("version 2^64-1", setting("version", value=2**64 - 1), MALFORMED),
    ("version 2^80", setting("version", value=2**80), MALFORMED),
    ("version 2.0", setting("version", value=2.0), MALFORMED),
    ("version true", setting("version", value=True), MALFORMED),
    ("version as a string", setting("version", value="2"), MALFORMED),
    ("node threshold 0", setting("roles", "node", "threshold", value=0), MALFORMED),
    ("node threshold -1", setting("roles", "node", "threshold", value=-1), MALFORMED),
    ("node threshold 2 of 1 key", setting("roles", "node", "threshold", value=2), MALFORMED),
    ("node threshold 2^31", setting("roles", "node", "threshold", value=2**31), MALFORMED),
    ("node threshold 2^63-1", setting("roles", "node", "threshold", value=2**63 - 1), MALFORMED),
    ("node threshold 2^64-1", setting("roles", "node", "threshold", value=2**64 - 1), MALFORMED),
    ("node threshold true", setting("roles", "node", "threshold", value=True), MALFORMED),
    ("admin threshold 2 of 1 key", setting("roles", "admin", "threshold", value=2), MALFORMED),
    ("keyless role threshold 1", setting("roles", "publisher", "threshold", value=1), OK),
    ("keyless role threshold 2", setting("roles", "publisher", "threshold", value=2), MALFORMED),
    ("unknown role", unknown_role, MALFORMED),
    ("keyids not a list", setting("roles", "node", "keyids", value=NODE.key_id), MALFORMED),
    ("keyid not a string", setting("roles", "node", "keyids", value=[7]), MALFORMED),
    ("roles not an object", setting("roles", value=[["admin", {}]]), MALFORMED),
    ("1024 keys", many_keys(1024), MALFORMED),  # counted, then the fillers fail as keys
    ("1025 keys", many_keys(1025), MALFORMED),
    ("key name of 256 characters", node_key("name", "n" * 256), OK),
    ("key name of 257 characters", node_key("name", "n" * 257), MALFORMED),
    ("key name not a string", node_key("name", {"n": 1}), MALFORMED),
    ("key name with a lone surrogate", node_key("name", "\ud800"), MALFORMED),
    ("expires at the earliest time", setting("expires", value="0001-01-01T00:00:00Z"), OK),
    ("expires at the latest time", setting("expires", value="9999-12-31T23:59:59Z"), OK),
    ("expires before year 1 in UTC", setting("expires", value="0001-01-01T00:00:00+01:00"), MALFORMED),
    ("expires after 9999 in UTC", setting("expires", value="9999-12-31T23:59:59-01:00"), MALFORMED),
    ("expires in year 10000", setting("expires", value="10000-01-01T00:00:00Z"), MALFORMED),
    ("expires as a number", setting("expires", value=1893456000), MALFORMED),
    ("notBefore before year 1 in UTC", node_key("notBefore", "0001-01-01T00:30:00+01:00"), MALFORMED),
    ("notAfter after 9999 in UTC", node_key("notAfter", "9999-12-31T23:00:00-02:00"), MALFORMED),
    ("revokedAt at the latest time", node_key("revokedAt", "9999-12-31T23:59:59Z"), OK),
    ("a marketplace log", logs({"policy": log_policy()}), OK),
    ("a marketplace log without witnesses", logs({"policy": log_policy(witness=False)}), OK),
    ("16 marketplace logs", logs(*({"policy": log_policy(f"m{n}.example/log")} for n in range(16))), OK),
    ("17 marketplace logs", logs(*({"policy": log_policy(f"m{n}.example/log")} for n in range(17))), MALFORMED),
    ("marketplaceLogs empty", logs(), MALFORMED),
    ("marketplaceLogs not a list", setting("marketplaceLogs", value={"policy": log_policy()}), MALFORMED),
    ("a marketplace log with an unknown member", logs({"policy": log_policy(), "url": "x"}), MALFORMED),
    ("a marketplace log without policy", logs({}), MALFORMED),
    ("a log policy not a string", logs({"policy": [log_policy()]}), MALFORMED),
    ("a log policy of 2^14 bytes", logs({"policy": padded_policy(2**14)}), OK),
    ("a log policy of 2^14 + 1 bytes", logs({"policy": padded_policy(2**14 + 1)}), MALFORMED),
    ("a log policy without a quorum", logs({"policy": log_policy().replace("quorum w\n", "")}), MALFORMED),
    ("a log policy with a CR", logs({"policy": log_policy().replace("\n", "\r\n")}), MALFORMED),
    ("a log policy naming no log", logs({"policy": log_policy().split("\n", 1)[1]}), MALFORMED),
    ("a log policy with a lone surrogate", logs({"policy": log_policy() + "# \ud800\n"}), MALFORMED),
    ("two marketplace logs of one origin", logs({"policy": log_policy()}, {"policy": log_policy()}), MALFORMED),
]


@pytest.mark.parametrize(("change", "reason"), [c[1:] for c in ROOT_CASES], ids=[c[0] for c in ROOT_CASES])
def test_trust_root_numbers_and_times_are_bounded(change: Callable[[Document], None], reason: str) -> None:
    document = root_document()
    change(document)
    payload = json.dumps(document).encode()
    if reason == OK:
        root = parse_trust_root(payload)
        # What parses can be sent (GetTrustRoot) and read back from its stored envelope.
        envelope = Envelope(TRUST_ROOT_PAYLOAD_TYPE, payload).to_json()
        message = wire_form(root, envelope)
        assert message.version == document["version"]
        policies = [log["policy"] for log in document.get("marketplaceLogs", [])]
        assert list(message.log_policies) == list(root.marketplace_logs) == policies
        assert len(root.log_policies) == len(policies)
        # The canonical payload keeps them, so a root re-signed by the server says what its admin signed.
        assert parse_trust_root(root.payload()) == root
        return
    with pytest.raises(TrustRootError) as caught:
        parse_trust_root(payload)
    assert caught.value.reason == reason


def test_a_root_that_cannot_travel_is_refused_before_it_is_stored() -> None:
    """wire_form is the last check before the write: a root built past the parser still cannot get in."""
    root = parse_trust_root(json.dumps(root_document()).encode())
    roles = {**root.roles, "node": Role(root.roles["node"].key_ids, 2**31)}
    unparseable = TrustRoot(root.version, root.expires, root.keys, roles)
    envelope = Envelope(TRUST_ROOT_PAYLOAD_TYPE, unparseable.payload()).to_json()
    with pytest.raises(TrustRootError) as caught:
        wire_form(unparseable, envelope)
    assert caught.value.reason == MALFORMED


def _signatures(count: int) -> bytes:
    signature = {"keyid": ADMIN.key_id, "sig": base64.b64encode(b"\0" * 64).decode()}
    return json.dumps({"payloadType": "t", "payload": "", "signatures": [signature] * count}).encode()


@pytest.mark.parametrize(("count", "accepted"), [(0, True), (256, True), (257, False), (10_000, False)])
def test_an_envelope_carries_at_most_256_signatures(count: int, accepted: bool) -> None:
    if accepted:
        assert len(parse_envelope(_signatures(count)).signatures) == count
        return
    with pytest.raises(EnvelopeFormatError, match="at most 256"):
        parse_envelope(_signatures(count))


def _statement(size: Any) -> bytes:
    subject = {"name": "cubes/c.pb", "digest": {"sha256": "0" * 64}, "annotations": {"size": size}}
    return canonical_json({"_type": STATEMENT_TYPE, "subject": [subject], "predicateType": PREDICATE_TYPE})


SIZE_CASES = [(0, True), (2**53 - 1, True), (-1, False), (2**53, False), (2**63 - 1, False), (2**64 - 1, False)]


@pytest.mark.parametrize(("size", "accepted"), SIZE_CASES, ids=[str(c[0]) for c in SIZE_CASES])
def test_a_subject_size_is_bounded(size: int, accepted: bool) -> None:
    if accepted:
        assert parse_statement(_statement(size), 10).subjects["cubes/c.pb"].size == size
        return
    with pytest.raises(BundleError) as caught:
        parse_statement(_statement(size), 10)
    assert caught.value.reason == "BUNDLE_STATEMENT_INVALID"


COUNT_CASES = [(0, True), (2**53 - 1, True), (-1, False), (2**63, False), (2**80, False), (True, False)]


@pytest.mark.parametrize(("cubes", "shown"), COUNT_CASES, ids=[repr(c[0]) for c in COUNT_CASES])
def test_a_predicate_count_out_of_range_is_left_out_of_the_report(cubes: int, shown: bool) -> None:
    predicate = {"redactions": [{"sensitivityLabel": "pii", "action": "REDACT_TEXT", "cubes": cubes}]}
    report = BundleReport(valid=True, statement=Statement({}, predicate))
    message = verification_message(report, 0, lambda key: "")
    assert [r.cube_count for r in message.redactions] == ([cubes] if shown else [])


def test_docs_protocol_lists_every_bound_with_its_value() -> None:
    text = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    section = text.split("\n## Bounds\n", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"`([A-Z_]+)` = ([^|]+?) *\|", section))
    constants = {name: getattr(bounds, name) for name in dir(bounds) if name.isupper() and name != "UTC"}
    assert sorted(documented) == sorted(constants)
    for name, value in constants.items():
        shown = documented[name]
        if isinstance(value, datetime):
            assert parse_time(shown) == value.astimezone(UTC), name
        else:
            assert re.fullmatch(r"[0-9^ +-]+", shown), f"{name}: {shown}"
            assert eval(shown.replace("^", "**")) == value, name  # digits, ^, + and - only
