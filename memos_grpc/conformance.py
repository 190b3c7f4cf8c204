"""The ``memos-conformance`` command: the Python implementation of the protocol's conformance interface.

It reads one JSON request a line on stdin, ``{"id": "<string>", "vector": <one testdata/vectors/*.json object>,
"chunk": <int>}``, and writes one JSON answer a line on stdout, flushed and in order: ``{"id": "<same>", "valid":
true|false, "reason": "<stable reason, empty when valid>"}``. ``chunk`` 0 hands a bundle to the verifier whole, N > 0
in pieces of N bytes; other kinds ignore it. A kind this module does not run answers ``UNSUPPORTED_KIND``, a request
or vector it cannot read ``BAD_REQUEST``, and a verifier that raises where it should have answered
``INTERNAL_ERROR`` (a bug, with its traceback on stderr); nothing a request holds stops the command.

``run_vector`` gives a vector's whole outcome (digests, counts and decisions beside the verdict): it is what the
tests in tests/interchange, tests/marketplace and tests/transparency compare with each vector's ``expected``, so the
command and the tests cannot drift apart. docs/conformance.md describes the protocol and the interop runner.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import IO, Any, NoReturn

from memos_grpc import reasons
from memos_grpc.errors import BundleError, TrustRootError
from memos_grpc.interchange.bundle import BundleLimits, TrustPolicy, verify_bundle, verify_statement_envelope
from memos_grpc.interchange.dsse import parse_envelope
from memos_grpc.interchange.trust import parse_trust_root, verify_root_update
from memos_grpc.marketplace import entries
from memos_grpc.marketplace.entries import EntryError
from memos_grpc.marketplace.grants import verify_grant
from memos_grpc.marketplace.terms import Terms, TermsError
from memos_grpc.primitives.canonical import parse_time
from memos_grpc.primitives.keys import TrustedKey
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint, CheckpointError
from memos_grpc.transparency.cosignature import CosignatureError, CosignatureVerifier, verify_cosigned
from memos_grpc.transparency.merkle import ProofError
from memos_grpc.transparency.note import NoteError, NoteVerifier, open_note, parse_vkey
from memos_grpc.transparency.policy import PolicyError, parse_policy, satisfied
from memos_grpc.transparency.proof import verify_proof

__all__ = [
    "RUNNERS",
    "BadRequestError",
    "answer",
    "main",
    "run_vector",
    "serve",
]

#: The largest chunk size, threshold, limit, use count or age a request may give: 2^53 - 1, the largest integer every
#: JSON reader holds exactly (docs/conformance.md, "Integers").
MAX_REQUEST_INTEGER = 2**53 - 1
#: The largest Merkle tree size or index a request may give: 2^64 - 1, so that the verifier itself answers for sizes
#: past its own bound of 2^63 - 1 (SIZE_OUT_OF_RANGE).
MAX_TREE_INTEGER = 2**64 - 1
#: An integer written with more digits than 2^64 has is past every bound above; it is read as a float, never an int,
#: so that Python's limit on the digits int() converts cannot refuse a line whose huge number is in a member no kind
#: reads.
_MAX_INTEGER_DIGITS = len(str(MAX_TREE_INTEGER))

Outcome = dict[str, Any]
Inputs = Mapping[str, Any]


class BadRequestError(Exception):
    """A request or vector that does not say what to verify: a missing or mistyped field, bytes that are not base64."""


# Reading a vector's inputs. Every shape is checked here, so an exception a verifier raises later is the verifier's
# bug (INTERNAL_ERROR), never a malformed request passed through.


def _field(inputs: Inputs, name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in inputs:
        raise BadRequestError(f"inputs has no {name!r}")
    value = inputs[name]
    # bool is an int in Python; no field of a vector is both.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise BadRequestError(f"inputs.{name} is not of type {kind}")
    return value


def _text(inputs: Inputs, name: str) -> str:
    text: str = _field(inputs, name, str)
    return text


def _int(inputs: Inputs, name: str, most: int = MAX_REQUEST_INTEGER) -> int:
    """An integer input from 0 to ``most``: one out of range is the request's mistake, never the verifier's input."""
    number: int = _field(inputs, name, int)
    if not 0 <= number <= most:
        raise BadRequestError(f"inputs.{name} is not an integer from 0 to {most}")
    return number


def _tree_int(inputs: Inputs, name: str) -> int:
    """A Merkle tree size or index: a uint64, as RFC 9162 has them; the verifier refuses those past 2^63 - 1."""
    return _int(inputs, name, MAX_TREE_INTEGER)


def _object(inputs: Inputs, name: str) -> dict[str, Any]:
    found: dict[str, Any] = _field(inputs, name, dict)
    return found


def _list(inputs: Inputs, name: str, item: type) -> list[Any]:
    found: list[Any] = _field(inputs, name, list)
    if not all(isinstance(x, item) and not isinstance(x, bool) for x in found):
        raise BadRequestError(f"inputs.{name} holds an item that is not of type {item}")
    return found


def _b64(text: Any, name: str) -> bytes:
    """The vector convention: bytes as standard base64 with padding."""
    if not isinstance(text, str):
        raise BadRequestError(f"{name} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadRequestError(f"{name} is not standard base64: {error}") from error


def _time(inputs: Inputs, name: str) -> datetime:
    try:
        return parse_time(_text(inputs, name))
    except ValueError as error:
        raise BadRequestError(f"inputs.{name}: {error}") from error


def _trusted_keys(inputs: Inputs) -> dict[str, TrustedKey]:
    keys = {}
    for item in _list(inputs, "trusted_keys", dict):
        times = {f: _time(item, f) if f in item else None for f in ("not_before", "not_after", "revoked_at")}
        key_id = _text(item, "key_id")
        keys[key_id] = TrustedKey(
            key_id,
            _b64(item.get("public_key"), "trusted_keys[].public_key"),
            not_before=times["not_before"],
            not_after=times["not_after"],
            revoked_at=times["revoked_at"],
        )
    return keys


def _policy(inputs: Inputs) -> TrustPolicy:
    threshold = _int(inputs, "threshold")
    required = tuple(_list(inputs, "required_key_ids", str))
    return TrustPolicy("node", _trusted_keys(inputs), threshold, required)


def _chunks(data: bytes, chunk: int) -> Iterator[bytes]:
    if chunk == 0:
        yield data
        return
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def _note_verifier(vkey: Any, name: str) -> NoteVerifier:
    if not isinstance(vkey, str):
        raise BadRequestError(f"{name} is not a vkey string")
    try:
        key_name, key_id, _, public_key = parse_vkey(vkey)
    except NoteError as error:
        raise BadRequestError(f"{name}: {error}") from error
    return NoteVerifier(key_name, key_id, public_key)


def _decisions(terms: Terms, granted_at: datetime, checks: Iterable[Any]) -> list[dict[str, Any]]:
    checks = list(checks)
    for check in checks:
        if not isinstance(check, dict):
            raise BadRequestError("a check is not an object")
        # Read every check before deciding any, so a malformed one is a bad request whatever its place.
        _text(check, "action"), _int(check, "uses_so_far"), _time(check, "now")
    found = []
    for check in checks:
        decision = terms.permits(check["action"], check["uses_so_far"], granted_at, parse_time(check["now"]))
        found.append({"allowed": decision.allowed, "reason": decision.reason, "remaining": decision.remaining})
    return found


# One runner per kind: (inputs, chunk) -> the whole outcome, as testdata/vectors/README.md says to run it.


def run_envelope(inputs: Inputs, chunk: int) -> Outcome:
    envelope, policy, now = _text(inputs, "envelope"), _policy(inputs), _time(inputs, "now")
    try:
        payload = verify_statement_envelope(envelope.encode(), policy, now)
    except BundleError as error:
        return {"valid": False, "reason": error.reason}
    return {"valid": True, "reason": "", "payload_sha256": hashlib.sha256(payload).hexdigest()}


def run_bundle(inputs: Inputs, chunk: int) -> Outcome:
    data, policy, now = _b64(inputs.get("bundle"), "inputs.bundle"), _policy(inputs), _time(inputs, "now")
    limits_in = _object(inputs, "limits")
    limits = BundleLimits(**{f: _int(limits_in, f) for f in BundleLimits.__dataclass_fields__})
    report = verify_bundle(_chunks(data, chunk), policy, limits, now)
    if not report.valid:
        return {"valid": False, "reason": report.reason}
    return {
        "valid": True,
        "reason": "",
        "statement_sha256": report.statement_digest.removeprefix("sha256:"),
        "cube_count": report.cube_count,
        "blob_count": report.blob_count,
    }


def run_trust_root_update(inputs: Inputs, chunk: int) -> Outcome:
    proposed, now = _text(inputs, "proposed_root"), _time(inputs, "now")
    try:
        # The current root is the anchor the caller already trusts: one that does not parse is a bad request.
        current = parse_trust_root(parse_envelope(_text(inputs, "current_root").encode()).payload)
    except (TrustRootError, BundleError, ValueError) as error:
        raise BadRequestError(f"inputs.current_root: {error}") from error
    try:
        root, _ = verify_root_update(current, proposed.encode(), now)
    except TrustRootError as error:
        return {"valid": False, "reason": error.reason}
    return {"valid": True, "reason": "", "version": root.version}


def run_merkle(inputs: Inputs, chunk: int) -> Outcome:
    operation = _text(inputs, "operation")
    if operation == "hashes":
        leaves = [merkle.leaf_hash(_b64(e, "inputs.entries[]")) for e in _list(inputs, "entries", str)]
        nodes = []
        level = 0
        while 1 << level <= len(leaves):
            for index in range(len(leaves) >> level):
                subtree = leaves[index << level : (index + 1) << level]
                nodes.append({"level": level, "index": index, "hash": merkle.root_from_leaves(subtree).hex()})
            level += 1
        roots = [merkle.root_from_leaves(leaves[:size]).hex() for size in range(len(leaves) + 1)]
        return {"valid": True, "reason": "", "leaf_hashes": [h.hex() for h in leaves], "nodes": nodes, "roots": roots}
    proof = [_b64(h, "inputs.proof[]") for h in _list(inputs, "proof", str)]
    try:
        if operation == "inclusion":
            leaf, root = _b64(inputs.get("leaf_hash"), "inputs.leaf_hash"), _b64(inputs.get("root"), "inputs.root")
            index, size = _tree_int(inputs, "index"), _tree_int(inputs, "size")
            merkle.verify_inclusion(leaf, index, size, proof, root)
        elif operation == "consistency":
            old_size, new_size = _tree_int(inputs, "old_size"), _tree_int(inputs, "new_size")
            old_root = _b64(inputs.get("old_root"), "inputs.old_root")
            new_root = _b64(inputs.get("new_root"), "inputs.new_root")
            merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
        else:
            raise BadRequestError(f"inputs.operation {operation!r} is not hashes, inclusion or consistency")
    except ProofError as error:
        return {"valid": False, "reason": error.reason}
    return {"valid": True, "reason": ""}


def run_entry(inputs: Inputs, chunk: int) -> Outcome:
    data = _b64(inputs.get("entry"), "inputs.entry")
    try:
        entry = entries.parse(data)
    except EntryError as error:
        return {"valid": False, "reason": error.reason}
    # One form per entry: what parse accepts, encode writes back byte for byte.
    if entry.encode() != data:
        raise AssertionError("a parsed entry does not encode back to its bytes")
    return {
        "valid": True,
        "reason": "",
        "type": entry.type,
        "subject": entry.subject,
        "statement": entry.statement,
        "signer": entry.signer,
        "ref": entry.ref,
    }


def run_terms(inputs: Inputs, chunk: int) -> Outcome:
    data = _b64(inputs.get("terms"), "inputs.terms")
    checks = _list(inputs, "checks", dict) if "checks" in inputs else None
    granted_at = _time(inputs, "granted_at") if checks is not None else None
    try:
        terms = Terms.parse(data)
    except TermsError as error:
        return {"valid": False, "reason": error.reason}
    outcome: Outcome = {
        "valid": True,
        "reason": "",
        "digest": terms.digest().removeprefix("sha256:"),
        "license": terms.license,
        "permitted": [p.action for p in terms.permissions],
    }
    if checks is not None and granted_at is not None:
        outcome["decisions"] = _decisions(terms, granted_at, checks)
    return outcome


def run_grant(inputs: Inputs, chunk: int) -> Outcome:
    trusted = _trusted_keys(inputs)
    grant_text, now = _text(inputs, "grant"), _time(inputs, "now")
    principal, key_id = _text(inputs, "licensee_principal"), _text(inputs, "licensee_key_id")
    checks = _list(inputs, "checks", dict)
    result = verify_grant(grant_text.encode(), trusted, principal, key_id, now)
    if not result:
        if not result.message:
            raise AssertionError("a refused grant has no message")
        return {"valid": False, "reason": result.reason}
    grant = result.grant
    if grant is None:
        raise AssertionError("an accepted grant has no grant")
    # Decisions run on the grant's terms from its notBefore, the time the license began.
    return {
        "valid": True,
        "reason": "",
        "statement_sha256": grant.statement_digest.removeprefix("sha256:"),
        "release": grant.release,
        "publish_log_index": grant.publish_log_index,
        "decisions": _decisions(grant.terms, grant.not_before, checks),
    }


def run_note(inputs: Inputs, chunk: int) -> Outcome:
    note = _text(inputs, "note")
    verifiers = [_note_verifier(v, "inputs.verifiers[]") for v in _list(inputs, "verifiers", str)]
    try:
        opened = open_note(note, verifiers)
    except NoteError as error:
        return {"valid": False, "reason": error.reason}
    return {"valid": True, "reason": "", "verified_by": list(opened.verified_by)}


def run_checkpoint(inputs: Inputs, chunk: int) -> Outcome:
    text = _text(inputs, "text")
    try:
        checkpoint = Checkpoint.parse(text)
    except CheckpointError as error:
        return {"valid": False, "reason": error.reason}
    if checkpoint.body() != text:
        raise AssertionError("a parsed checkpoint does not write back the same text")
    return {
        "valid": True,
        "reason": "",
        # A decimal string: sizes reach 2^63 - 1, past what a double holds.
        "size": str(checkpoint.size),
        "origin": checkpoint.origin,
        "root": base64.b64encode(checkpoint.root).decode(),
        "extensions": list(checkpoint.extensions),
    }


def run_cosignature(inputs: Inputs, chunk: int) -> Outcome:
    note, max_age = _text(inputs, "note"), _int(inputs, "max_age_seconds")
    now = int(_time(inputs, "now").timestamp())
    try:
        name, key_id, _, public_key = parse_vkey(_text(inputs, "witness"))
        witness = CosignatureVerifier(name, key_id, public_key)
    except (NoteError, ValueError) as error:
        raise BadRequestError(f"inputs.witness: {error}") from error
    try:
        timestamp = verify_cosigned(note, witness, now, max_age)
    # A note that does not parse is refused for its grammar (NOTE_*) before any cosignature is looked at.
    except (CosignatureError, NoteError) as error:
        return {"valid": False, "reason": error.reason}
    return {"valid": True, "reason": "", "timestamp": timestamp}


def run_tlog_policy(inputs: Inputs, chunk: int) -> Outcome:
    text, cosigned = _text(inputs, "policy"), _list(inputs, "cosigned", str)
    try:
        policy = parse_policy(text)
    except PolicyError as error:
        return {"valid": False, "reason": error.reason}
    return {"valid": True, "reason": "", "satisfied": satisfied(policy, cosigned)}


def run_tlog_proof(inputs: Inputs, chunk: int) -> Outcome:
    entry, proof = _b64(inputs.get("entry"), "inputs.entry"), _text(inputs, "proof")
    log = _note_verifier(inputs.get("log"), "inputs.log")
    now, max_age = _time(inputs, "now"), _int(inputs, "max_age_seconds")
    try:
        # The policy says whom the verifier trusts: one that does not parse is the caller's mistake.
        policy = parse_policy(_text(inputs, "policy"))
    except PolicyError as error:
        raise BadRequestError(f"inputs.policy: {error}") from error
    report = verify_proof(entry, proof, log, policy, policy.witnesses, now, max_age)
    if not report:
        return {"valid": False, "reason": report.reason}
    return {"valid": True, "reason": "", "index": report.index}


#: Every kind of testdata/vectors/, and how this implementation runs it.
RUNNERS: dict[str, Callable[[Inputs, int], Outcome]] = {
    "envelope": run_envelope,
    "bundle": run_bundle,
    "trust_root_update": run_trust_root_update,
    "merkle": run_merkle,
    "entry": run_entry,
    "terms": run_terms,
    "grant": run_grant,
    "note": run_note,
    "checkpoint": run_checkpoint,
    "cosignature": run_cosignature,
    "tlog-policy": run_tlog_policy,
    "tlog-proof": run_tlog_proof,
}


def run_vector(vector: Any, chunk: int = 0) -> Outcome:
    """The whole outcome of one vector (compare it with ``vector["expected"]``); raises BadRequestError.

    A kind with no runner gives ``{"valid": False, "reason": "UNSUPPORTED_KIND"}``.
    """
    if not isinstance(vector, dict):
        raise BadRequestError("the vector is not a JSON object")
    kind, inputs = vector.get("kind"), vector.get("inputs")
    if not isinstance(kind, str):
        raise BadRequestError("the vector has no kind")
    if not isinstance(inputs, dict):
        raise BadRequestError("the vector has no inputs object")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 0 <= chunk <= MAX_REQUEST_INTEGER:
        raise BadRequestError(f"chunk is not an integer from 0 to {MAX_REQUEST_INTEGER}")
    runner = RUNNERS.get(kind)
    if runner is None:
        return {"valid": False, "reason": reasons.UNSUPPORTED_KIND}
    return runner(inputs, chunk)


def _unicode_text(value: Any) -> bool:
    """Whether every string in a parsed JSON value, member names included, is Unicode text (no lone surrogate)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(_unicode_text(item) for item in value)
    if isinstance(value, dict):
        return all(_unicode_text(name) and _unicode_text(item) for name, item in value.items())
    return True


def _integer(text: str) -> int | float:
    """A JSON integer literal: an int, or a float when it has more digits than any member's bound allows."""
    return int(text) if len(text.lstrip("-")) <= _MAX_INTEGER_DIGITS else float(text)


def _not_json(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _read_line(line: str | bytes) -> Any:
    """The JSON value of a request line: UTF-8 (no other encoding, no byte order mark), every string Unicode text.

    ``json.loads`` alone would guess UTF-16 or UTF-32 from the bytes, keep an escaped lone surrogate (``"\\ud800"``)
    in its str, read ``NaN`` and ``Infinity`` as numbers, and refuse an integer of more than 4,300 digits; a Go or
    JavaScript reader does none of these.
    """
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        request = json.loads(text, parse_int=_integer, parse_constant=_not_json)
    except (ValueError, RecursionError) as error:
        raise BadRequestError(f"the line is not JSON in UTF-8: {error}") from error
    if not _unicode_text(request):
        raise BadRequestError("the line escapes a lone surrogate in a string")
    return request


def answer(line: str | bytes) -> dict[str, Any]:
    """The answer to one request line; never raises (a bug in a verifier is INTERNAL_ERROR, told on stderr)."""
    request_id = ""
    try:
        request = _read_line(line)
        if not isinstance(request, dict) or not isinstance(request.get("id"), str):
            raise BadRequestError("the request is not an object with a string id")
        request_id = request["id"]
        outcome = run_vector(request.get("vector"), request.get("chunk", 0))
    except BadRequestError:
        return {"id": request_id, "valid": False, "reason": reasons.BAD_REQUEST}
    except Exception:
        print(f"memos-conformance: request {request_id!r} raised:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return {"id": request_id, "valid": False, "reason": reasons.INTERNAL_ERROR}
    return {"id": request_id, "valid": bool(outcome["valid"]), "reason": str(outcome["reason"])}


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """One answer line per request line, each flushed before the next request is read."""
    for line in requests:
        # A blank line (JSON whitespace only) is not a request, as in every implementation.
        if not line.strip(b" \t\r\n"):
            continue
        answers.write(json.dumps(answer(line)).encode() + b"\n")
        answers.flush()


def main(argv: list[str] | None = None) -> int:
    """``memos-conformance``: requests on stdin, answers on stdout, until stdin ends."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        print(__doc__, file=sys.stderr)
        return 0 if args[0] in ("-h", "--help") else 2
    serve(sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
