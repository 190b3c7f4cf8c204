"""Deterministic mutations of the valid vectors, for the differential run: inputs no vector pins, on which every
implementation must still reach Python's verdict and reason.

Each valid envelope, bundle, trust-root update, grant and note vector yields a bounded number of mutants, chosen by
a generator seeded with the vector's name (so adding a vector changes no other vector's mutants): a flipped bit,
a truncation, a duplicated or reordered JSON member, payload and signatures re-encoded in URL-safe or unpadded
base64, and the same JSON mutations inside the signed payload, re-signed with the vector keys (their seeds are
public: testdata/vectors/README.md), so the payload's grammar is reached past the signature check. A bundle's
envelope entry is mutated the same ways and the archive rewritten around it.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from memos_grpc.interchange.dsse import pae

#: The vector keys: seed sha256(label), as in testdata/vectors/README.md.
KEYS = [
    Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"memos-vector-key-{i}".encode()).digest())
    for i in (1, 2, 3, 4, 5)
]
#: The string input each kind's mutations change.
TARGETS = {"envelope": "envelope", "trust_root_update": "proposed_root", "grant": "grant", "note": "note"}
#: How many mutants of each operation one vector yields (a bundle's envelope operations are counted apart).
COUNTS = {
    "flip": 14,
    "truncate": 6,
    "duplicate": 8,
    "reorder": 4,
    "reencode": 5,
    "payload-duplicate": 8,
    "payload-reorder": 3,
    "payload-flip": 10,
}
NOTE_COUNTS = {"flip": 14, "truncate": 6, "duplicate-line": 6, "swap-lines": 4, "reencode": 5}
BUNDLE_COUNTS = {"flip": 20, "truncate": 6}
#: Mutants kept of one vector, and the requests (each implementation) a whole run may make.
PER_SOURCE = 48
REQUEST_BUDGET = 2000


@dataclass(frozen=True)
class Mutation:
    case_id: str
    #: The valid vector it came from.
    source: str
    vector: dict[str, Any]


class Members(list[tuple[str, Any]]):
    """A JSON object as its members in order, duplicates kept."""


def loads(text: str | bytes) -> Any:
    return json.loads(text, object_pairs_hook=Members)


def dumps(node: Any) -> str:
    if isinstance(node, Members):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in node) + "}"
    if isinstance(node, list):
        return "[" + ",".join(dumps(v) for v in node) + "]"
    return json.dumps(node, ensure_ascii=False)


def objects(node: Any) -> list[Members]:
    found = []
    if isinstance(node, Members):
        found.append(node)
        for _, value in node:
            found += objects(value)
    elif isinstance(node, list):
        for value in node:
            found += objects(value)
    return found


def other_value(value: Any) -> Any:
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    return value


def duplicate_member(text: str, rng: random.Random) -> str | None:
    document = loads(text)
    targets = [o for o in objects(document) if o]
    if not targets:
        return None
    target = rng.choice(targets)
    index = rng.randrange(len(target))
    name, value = target[index]
    copy_value = value if rng.random() < 0.5 else other_value(value)
    target.insert(rng.choice((index + 1, len(target))), (name, copy_value))
    return dumps(document)


def reorder_members(text: str, rng: random.Random) -> str | None:
    document = loads(text)
    targets = [o for o in objects(document) if len(o) > 1]
    if not targets:
        return None
    target = rng.choice(targets)
    target[:] = rng.sample(list(target), len(target))
    return dumps(document)


def flip_ascii(text: str, rng: random.Random) -> str | None:
    """A bit of one ASCII character flipped, staying ASCII so that the text is still a JSON string's content."""
    data = bytearray(text.encode())
    places = [i for i, b in enumerate(data) if b < 0x80]
    if not places:
        return None
    place = rng.choice(places)
    data[place] ^= 1 << rng.randrange(7)
    return data.decode()


def truncate(text: str, rng: random.Random) -> str | None:
    data = text.encode()
    return data[: rng.randrange(len(data))].decode(errors="ignore") if data else None


def b64_any(text: str) -> bytes:
    return base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)


def reencode(data: bytes, rng: random.Random) -> str:
    """URL-safe, unpadded, or both, at random; never the standard padded form the input had."""
    urlsafe, unpadded = rng.choice(((True, False), (False, True), (True, True)))
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    return text.rstrip("=") if unpadded else text


def reencode_envelope(text: str, rng: random.Random) -> str | None:
    document = loads(text)
    if not isinstance(document, Members):
        return None
    fields = [(document, i) for i, (k, v) in enumerate(document) if k == "payload" and isinstance(v, str)]
    for _, signatures in document:
        if isinstance(signatures, list):
            for signature in signatures:
                if isinstance(signature, Members):
                    fields += [
                        (signature, i) for i, (k, v) in enumerate(signature) if k == "sig" and isinstance(v, str)
                    ]
    if not fields:
        return None
    owner, index = rng.choice(fields)
    name, value = owner[index]
    try:
        owner[index] = (name, reencode(b64_any(value), rng))
    except (binascii.Error, ValueError):
        return None
    return dumps(document)


def resign(text: str, mutate: Callable[[str, random.Random], str | None], rng: random.Random) -> str | None:
    """The envelope with its payload mutated and every signature a vector key made made again over the new payload."""
    envelope = loads(text)
    members = dict(envelope) if isinstance(envelope, Members) else {}
    payload_type, payload = members.get("payloadType"), members.get("payload")
    if not isinstance(payload_type, str) or not isinstance(payload, str):
        return None
    old = pae(payload_type, b64_any(payload))
    changed = mutate(b64_any(payload).decode(), rng)
    if changed is None:
        return None
    new = pae(payload_type, changed.encode())
    for index, (name, value) in enumerate(envelope):
        if name == "payload":
            envelope[index] = (name, base64.b64encode(changed.encode()).decode())
        if name == "signatures" and isinstance(value, list):
            for signature in value:
                for position, (field, sig) in enumerate(signature if isinstance(signature, Members) else []):
                    if field == "sig" and isinstance(sig, str):
                        signer = _signer(old, sig)
                        if signer is not None:
                            signature[position] = (field, base64.b64encode(signer.sign(new)).decode())
    return dumps(envelope)


def _signer(message: bytes, sig: str) -> Ed25519PrivateKey | None:
    try:
        raw = b64_any(sig)
    except (binascii.Error, ValueError):
        return None
    for key in KEYS:
        try:
            key.public_key().verify(raw, message)
        except InvalidSignature:
            continue
        return key
    return None


ENVELOPE_OPERATIONS: dict[str, Callable[[str, random.Random], str | None]] = {
    "flip": flip_ascii,
    "truncate": truncate,
    "duplicate": duplicate_member,
    "reorder": reorder_members,
    "reencode": reencode_envelope,
    "payload-duplicate": lambda t, r: resign(t, duplicate_member, r),
    "payload-reorder": lambda t, r: resign(t, reorder_members, r),
    "payload-flip": lambda t, r: resign(t, flip_ascii, r),
}


def note_duplicate_line(text: str, rng: random.Random) -> str | None:
    lines = text.split("\n")
    index = rng.randrange(len(lines))
    return "\n".join(lines[: index + 1] + lines[index:])


def note_swap_lines(text: str, rng: random.Random) -> str | None:
    lines = text.split("\n")
    if len(lines) < 2:
        return None
    first, second = rng.sample(range(len(lines)), 2)
    lines[first], lines[second] = lines[second], lines[first]
    return "\n".join(lines)


def note_reencode(text: str, rng: random.Random) -> str | None:
    lines = text.split("\n")
    signatures = [i for i, line in enumerate(lines) if line.startswith("\u2014 ") and " " in line[2:]]
    if not signatures:
        return None
    index = rng.choice(signatures)
    head, _, value = lines[index].rpartition(" ")
    try:
        lines[index] = f"{head} {reencode(b64_any(value), rng)}"
    except (binascii.Error, ValueError):
        return None
    return "\n".join(lines)


NOTE_OPERATIONS: dict[str, Callable[[str, random.Random], str | None]] = {
    "flip": flip_ascii,
    "truncate": truncate,
    "duplicate-line": note_duplicate_line,
    "swap-lines": note_swap_lines,
    "reencode": note_reencode,
}


def tar_entries(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """(header, data) of each entry of a plain ustar archive, or None when it is not one this can rewrite."""
    entries, offset = [], 0
    while offset + 512 <= len(data) and data[offset : offset + 512].strip(b"\0"):
        header = data[offset : offset + 512]
        try:
            size = int(header[124:136].strip(b"\0 ") or b"0", 8)
        except ValueError:
            return None
        entries.append((header, data[offset + 512 : offset + 512 + size]))
        offset += 512 + -(-size // 512) * 512
    return entries if len(entries) >= 2 else None


def tar_write(entries: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray()
    for header, content in entries:
        rewritten = bytearray(header)
        rewritten[124:136] = f"{len(content):011o}\0".encode()
        rewritten[148:156] = b" " * 8
        rewritten[148:156] = f"{sum(rewritten):06o}\0 ".encode()
        out += rewritten + content + b"\0" * (-len(content) % 512)
    return bytes(out + b"\0" * 1024)


def _unique(vector: dict[str, Any], seen: set[str]) -> bool:
    key = json.dumps(vector["inputs"], sort_keys=True)
    if key in seen:
        return False
    seen.add(key)
    return True


def mutations_of(vector: dict[str, Any]) -> list[Mutation]:
    """The mutants of one valid vector; none equals the vector or another mutant."""
    kind, name = vector["kind"], vector["name"]
    rng = random.Random(name)
    seen = {json.dumps(vector["inputs"], sort_keys=True)}
    found: list[Mutation] = []

    def add(operation: str, number: int, inputs: dict[str, Any]) -> None:
        mutant = {**copy.deepcopy(vector), "inputs": inputs}
        mutant.pop("expected", None)
        if _unique(mutant, seen):
            found.append(Mutation(f"{name}~{operation}-{number}", name, mutant))

    if kind == "bundle":
        data = base64.b64decode(vector["inputs"]["bundle"])
        for number in range(BUNDLE_COUNTS["flip"]):
            flipped = bytearray(data)
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            add("flip", number, {**vector["inputs"], "bundle": base64.b64encode(flipped).decode()})
        for number in range(BUNDLE_COUNTS["truncate"]):
            cut = data[: rng.randrange(len(data))]
            add("truncate", number, {**vector["inputs"], "bundle": base64.b64encode(cut).decode()})
        entries = tar_entries(data)
        if entries is None:
            return found
        envelope = entries[1][1].decode(errors="replace")
        for operation, count in COUNTS.items():
            for number in range(count):
                changed = ENVELOPE_OPERATIONS[operation](envelope, rng)
                if changed is not None:
                    rewritten = [entries[0], (entries[1][0], changed.encode()), *entries[2:]]
                    bundle = base64.b64encode(tar_write(rewritten)).decode()
                    add(f"envelope-{operation}", number, {**vector["inputs"], "bundle": bundle})
        return found
    field = TARGETS[kind]
    operations, counts = (NOTE_OPERATIONS, NOTE_COUNTS) if kind == "note" else (ENVELOPE_OPERATIONS, COUNTS)
    for operation, count in counts.items():
        for number in range(count):
            changed = operations[operation](vector["inputs"][field], rng)
            if changed is not None:
                add(operation, number, {**vector["inputs"], field: changed})
    return found


def interleaved(mutants: list[Mutation]) -> list[Mutation]:
    """The mutants one of each operation at a time, so that taking the first k keeps every operation."""
    by_operation: dict[str, list[Mutation]] = {}
    for mutant in mutants:
        by_operation.setdefault(mutant.case_id.split("~")[1].rsplit("-", 1)[0], []).append(mutant)
    rounds = max((len(v) for v in by_operation.values()), default=0)
    return [ops[i] for i in range(rounds) for ops in by_operation.values() if i < len(ops)]


def all_mutations(vectors: list[dict[str, Any]]) -> list[Mutation]:
    """At most PER_SOURCE mutants of each valid vector, fewer when that would pass REQUEST_BUDGET requests (a bundle
    mutant is two: whole and chunked); the cap is the same for every vector, so a mutant's id names the same mutant
    as long as the cap stands."""
    sources = [
        interleaved(mutations_of(v))
        for v in sorted(vectors, key=lambda v: v["name"])
        if v["kind"] in ("bundle", *TARGETS) and v["expected"]["valid"]
    ]

    def requests(cap: int) -> int:
        return sum(len(s[:cap]) * (2 if s and s[0].vector["kind"] == "bundle" else 1) for s in sources)

    cap = PER_SOURCE
    while cap > 1 and requests(cap) > REQUEST_BUDGET:
        cap -= 1
    return [m for s in sources for m in s[:cap]]
