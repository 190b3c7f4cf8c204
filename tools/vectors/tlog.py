"""Transparency-log text vectors: C2SP signed notes, checkpoints, cosignatures, tlog policies and tlog-proof files.

Key ids, signed messages and RFC 6962 hashes are written here from the C2SP specs and RFC 6962, not taken from
memos_grpc.transparency, so that a vector pins the formats instead of mirroring the implementation.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Sequence

from tools.vectors.common import KEY1, KEY2, KEY3, KEY4, NOW, Json, VectorKey, b64, invalid, rfc3339, valid, vector

LOG = "log.example/memstore"
OTHER_LOG = "other.example/log"
WITNESS_A, WITNESS_B, WITNESS_C = "witness-a.example", "witness-b.example", "witness-c.example"
KEY5 = VectorKey("memos-vector-key-5")
NOW_UNIX = int(NOW.timestamp())
MAX_AGE = 3600
EM = "\u2014"


def key_id(name: str, kind: int, key: VectorKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + key.public_key).digest()[:4]


def vkey(name: str, kind: int, key: VectorKey) -> str:
    return f"{name}+{key_id(name, kind, key).hex()}+{b64(bytes([kind]) + key.public_key)}"


def sig_line(name: str, raw: bytes) -> str:
    return f"{EM} {name} {b64(raw)}\n"


def note_line(text: str, name: str, key: VectorKey, *, kid: bytes | None = None) -> str:
    return sig_line(name, (kid or key_id(name, 1, key)) + key.sign(text.encode()))


def cosig_line(text: str, name: str, key: VectorKey, when: int, *, header: bool = True) -> str:
    message = (b"cosignature/v1\ntime %d\n" % when if header else b"") + text.encode()
    return sig_line(name, key_id(name, 4, key) + struct.pack(">Q", when) + key.sign(message))


def flip_last(line: str) -> str:
    """The signature line with one bit of its last signature byte flipped (still valid base64)."""
    prefix, encoded = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1
    return f"{prefix} {b64(bytes(raw))}\n"


def leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 section 2.1 Merkle tree hash of leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 audit path, leaf sibling first."""
    if len(leaves) <= 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if index < k:
        return [*path(index, leaves[:k]), mth(leaves[k:])]
    return [*path(index - k, leaves[k:]), mth(leaves[:k])]


TEXT = "memos vector note\nsecond line\n"
LOG_VKEY = vkey(LOG, 1, KEY1)


def note_vectors() -> list[Json]:
    def case(name: str, description: str, note: str, expected: Json, verifiers: Sequence[str] = (LOG_VKEY,)) -> Json:
        return vector("note", name, description, {"note": note, "verifiers": list(verifiers)}, expected)

    good = note_line(TEXT, LOG, KEY1)
    other = note_line(TEXT, OTHER_LOG, KEY2)
    cosig = cosig_line(TEXT, WITNESS_A, KEY3, NOW_UNIX)
    body = TEXT + "\n"
    wrong_id = bytes(b ^ 0xFF for b in key_id(LOG, 1, KEY1))
    unknown = [note_line(TEXT, f"unknown-{n}.example", KEY2) for n in range(99)]
    return [
        case("valid-single", "One Ed25519 signature by the known key.", body + good, valid(verified_by=[LOG])),
        case(
            "valid-several-signatures",
            "The known key's signature between lines from keys the verifier does not know.",
            body + other + good + cosig,
            valid(verified_by=[LOG]),
        ),
        case(
            "valid-unknown-keys-first",
            "Unknown keys sign first; the known key's line comes last.",
            body + other + cosig + good,
            valid(verified_by=[LOG]),
        ),
        case(
            "valid-two-known-keys",
            "Two known keys both sign; both are reported.",
            body + good + other,
            valid(verified_by=[LOG, OTHER_LOG]),
            [LOG_VKEY, vkey(OTHER_LOG, 1, KEY2)],
        ),
        case(
            "valid-known-name-other-key-id",
            "A line under the known name with another key id is an unknown key and is ignored.",
            body + sig_line(LOG, wrong_id + KEY2.sign(TEXT.encode())) + good,
            valid(verified_by=[LOG]),
        ),
        case(
            "valid-repeated-signature",
            "The known key's line twice: both verify, the key counts once.",
            body + good + good,
            valid(verified_by=[LOG]),
        ),
        case(
            "valid-100-signatures",
            "99 unknown signature lines and the known one: the most a note may carry.",
            body + "".join(unknown) + good,
            valid(verified_by=[LOG]),
        ),
        case(
            "too-many-signatures",
            "101 signature lines: over the bound of 100.",
            body + "".join(unknown) + other + good,
            invalid("NOTE_TOO_MANY_SIGNATURES"),
        ),
        case(
            "wrong-key-id",
            "The known key signed, but the line's key id is not its key id: no known key signed.",
            body + sig_line(LOG, wrong_id + KEY1.sign(TEXT.encode())),
            invalid("NOTE_UNVERIFIED"),
        ),
        case(
            "unknown-keys-only",
            "Only keys the verifier does not know signed.",
            body + other + cosig,
            invalid("NOTE_UNVERIFIED"),
        ),
        case(
            "bad-signature",
            "The known key's line does not verify (one bit flipped).",
            body + flip_last(good),
            invalid("NOTE_SIGNATURE_INVALID"),
        ),
        case(
            "bad-signature-after-good",
            "A good line by the known key, then a bad one by the same key: a known key's bad line refuses the note.",
            body + good + flip_last(good),
            invalid("NOTE_SIGNATURE_INVALID"),
        ),
        case(
            "bad-signature-length",
            "The known key's line carries a 63-byte signature.",
            body + sig_line(LOG, key_id(LOG, 1, KEY1) + KEY1.sign(TEXT.encode())[:63]),
            invalid("NOTE_SIGNATURE_INVALID"),
        ),
        case(
            "bad-base64",
            "A signature that is not base64.",
            body + good + f"{EM} {OTHER_LOG} not*base64==\n",
            invalid("NOTE_SIGNATURE_MALFORMED"),
        ),
        case(
            "unpadded-base64",
            "The known key's signature without its base64 padding.",
            body + good.rstrip("\n").rstrip("=") + "\n",
            invalid("NOTE_SIGNATURE_MALFORMED"),
        ),
        case(
            "signature-too-short",
            "A signature of 4 bytes: a key id and nothing signed.",
            body + good + sig_line(OTHER_LOG, b"\x01\x02\x03\x04"),
            invalid("NOTE_SIGNATURE_MALFORMED"),
        ),
        case(
            "hyphen-not-em-dash",
            "A signature line opening with '-' instead of U+2014.",
            body + good.replace(EM, "-", 1),
            invalid("NOTE_SIGNATURE_MALFORMED"),
        ),
        case(
            "key-name-with-plus",
            "A key name holding '+'.",
            body + good + note_line(TEXT, "a+b.example", KEY2),
            invalid("NOTE_SIGNATURE_MALFORMED"),
        ),
        case(
            "blank-line-in-body",
            "The text holds a blank line (signed as such).",
            "first\n\nsecond\n\n" + note_line("first\n\nsecond\n", LOG, KEY1),
            invalid("NOTE_MALFORMED"),
        ),
        case(
            "crlf",
            "Lines end in CR LF (signed as such).",
            "first\r\nsecond\r\n\r\n" + note_line("first\r\nsecond\r\n", LOG, KEY1).replace("\n", "\r\n"),
            invalid("NOTE_MALFORMED"),
        ),
        case(
            "missing-final-newline",
            "The last signature line has no newline.",
            body + good.rstrip("\n"),
            invalid("NOTE_MALFORMED"),
        ),
        case("no-blank-line", "No blank line between text and signatures.", TEXT + good, invalid("NOTE_MALFORMED")),
        case("no-signatures", "Text and a blank line, no signature line.", body, invalid("NOTE_MALFORMED")),
        case(
            "empty-text",
            "A blank line and a signature over the empty text.",
            "\n" + note_line("", LOG, KEY1),
            invalid("NOTE_MALFORMED"),
        ),
        case(
            "tab-in-text",
            "The text holds a tab (a control character).",
            "a\tb\n\n" + note_line("a\tb\n", LOG, KEY1),
            invalid("NOTE_MALFORMED"),
        ),
        case(
            "byte-order-mark",
            "The note starts with U+FEFF.",
            "\ufeff" + TEXT + "\n" + note_line("\ufeff" + TEXT, LOG, KEY1),
            invalid("NOTE_MALFORMED"),
        ),
    ]


ROOT5 = mth([leaf(b"entry %d" % n) for n in range(5)])


def checkpoint_vectors() -> list[Json]:
    def case(name: str, description: str, text: str, expected: Json) -> Json:
        return vector("checkpoint", name, description, {"text": text}, expected)

    def ok(origin: str, size: int, root: bytes, *extensions: str) -> Json:
        return valid(origin=origin, size=str(size), root=b64(root), extensions=list(extensions))

    root = b64(ROOT5)
    empty = hashlib.sha256(b"").digest()
    return [
        case("valid", "Origin, size 5, root hash.", f"{LOG}\n5\n{root}\n", ok(LOG, 5, ROOT5)),
        case("valid-empty-tree", "Size 0 with the empty tree's root.", f"{LOG}\n0\n{b64(empty)}\n", ok(LOG, 0, empty)),
        case(
            "valid-max-size",
            "Size 2**63 - 1, the largest allowed.",
            f"{LOG}\n9223372036854775807\n{root}\n",
            ok(LOG, (1 << 63) - 1, ROOT5),
        ),
        case(
            "valid-extensions",
            "Two opaque extension lines.",
            f"{LOG}\n5\n{root}\next one\n\u00e9xt two\n",
            ok(LOG, 5, ROOT5, "ext one", "\u00e9xt two"),
        ),
        case("size-leading-zero", "Size written 05.", f"{LOG}\n05\n{root}\n", invalid("CHECKPOINT_SIZE_INVALID")),
        case(
            "size-too-large", "Size 2**63.", f"{LOG}\n9223372036854775808\n{root}\n", invalid("CHECKPOINT_SIZE_INVALID")
        ),
        case("size-negative", "Size -1.", f"{LOG}\n-1\n{root}\n", invalid("CHECKPOINT_SIZE_INVALID")),
        case("size-plus-sign", "Size +5.", f"{LOG}\n+5\n{root}\n", invalid("CHECKPOINT_SIZE_INVALID")),
        case("size-hex", "Size 0x5.", f"{LOG}\n0x5\n{root}\n", invalid("CHECKPOINT_SIZE_INVALID")),
        case(
            "root-31-bytes",
            "A 31-byte root hash.",
            f"{LOG}\n5\n{b64(ROOT5[:31])}\n",
            invalid("CHECKPOINT_ROOT_INVALID"),
        ),
        case(
            "root-unpadded",
            "The root hash without padding.",
            f"{LOG}\n5\n{root.rstrip('=')}\n",
            invalid("CHECKPOINT_ROOT_INVALID"),
        ),
        case(
            "root-url-safe",
            "The root hash in URL-safe base64.",
            f"{LOG}\n5\n{b64(ROOT5, urlsafe=True)}\n",
            invalid("CHECKPOINT_ROOT_INVALID"),
        ),
        case("origin-empty", "An empty origin line.", f"\n5\n{root}\n", invalid("CHECKPOINT_ORIGIN_INVALID")),
        case("origin-leading-space", "Origin ' log'.", f" {LOG}\n5\n{root}\n", invalid("CHECKPOINT_ORIGIN_INVALID")),
        case("origin-trailing-space", "Origin 'log '.", f"{LOG} \n5\n{root}\n", invalid("CHECKPOINT_ORIGIN_INVALID")),
        case("missing-root", "Origin and size only.", f"{LOG}\n5\n", invalid("CHECKPOINT_MALFORMED")),
        case(
            "missing-final-newline", "No newline after the root.", f"{LOG}\n5\n{root}", invalid("CHECKPOINT_MALFORMED")
        ),
        case("crlf", "Lines end in CR LF.", f"{LOG}\r\n5\r\n{root}\r\n", invalid("CHECKPOINT_MALFORMED")),
        case(
            "empty-extension",
            "A blank extension line.",
            f"{LOG}\n5\n{root}\n\nx\n",
            invalid("CHECKPOINT_EXTENSION_INVALID"),
        ),
    ]


CHECKPOINT5 = f"{LOG}\n5\n{b64(ROOT5)}\n"
SIGNED5 = CHECKPOINT5 + "\n" + note_line(CHECKPOINT5, LOG, KEY1)


def cosignature_vectors() -> list[Json]:
    witness = vkey(WITNESS_A, 4, KEY3)

    def case(name: str, description: str, lines: str, expected: Json, *, note: str | None = None) -> Json:
        text = SIGNED5 + lines if note is None else note
        inputs = {"note": text, "witness": witness, "now": rfc3339(NOW), "max_age_seconds": MAX_AGE}
        return vector("cosignature", name, description, inputs, expected)

    at = NOW_UNIX - 60
    good = cosig_line(CHECKPOINT5, WITNESS_A, KEY3, at)
    # A note that does not parse is refused with its note grammar reason before any cosignature is looked at.
    malformed = [
        case(
            "note-no-final-newline",
            "A good cosignature, but the note does not end with a newline.",
            "",
            invalid("NOTE_MALFORMED"),
            note=SIGNED5 + good.rstrip("\n"),
        ),
        case(
            "note-no-blank-line",
            "The checkpoint and the cosignature with no blank line between them.",
            "",
            invalid("NOTE_MALFORMED"),
            note=CHECKPOINT5 + good,
        ),
        case(
            "note-carriage-return",
            "A CR in the checkpoint text.",
            "",
            invalid("NOTE_MALFORMED"),
            note=SIGNED5.replace("\n5\n", "\r\n5\n", 1) + good,
        ),
        case("note-empty", "An empty note.", "", invalid("NOTE_MALFORMED"), note=""),
        case(
            "note-signature-not-base64",
            "A signature line under the witness's name whose signature is not base64.",
            f"{EM} {WITNESS_A} not*base64\n",
            invalid("NOTE_SIGNATURE_MALFORMED"),
        ),
        case(
            "note-signature-key-id-only",
            "A signature line under the witness's name holding its 4-byte key id and nothing else.",
            sig_line(WITNESS_A, key_id(WITNESS_A, 4, KEY3)),
            invalid("NOTE_SIGNATURE_MALFORMED"),
        ),
        case(
            "note-too-many-signatures",
            "The good cosignature 101 times: more signature lines than a note may carry.",
            good * 101,
            invalid("NOTE_TOO_MANY_SIGNATURES"),
        ),
    ]
    return [
        *malformed,
        case("valid", "A cosignature a minute old.", good, valid(timestamp=at)),
        case(
            "valid-unknown-cosigners-first",
            "Other witnesses' cosignatures come first.",
            cosig_line(CHECKPOINT5, WITNESS_B, KEY4, at) + cosig_line(CHECKPOINT5, WITNESS_C, KEY5, at) + good,
            valid(timestamp=at),
        ),
        case(
            "valid-at-max-age",
            "Exactly max_age seconds old.",
            cosig_line(CHECKPOINT5, WITNESS_A, KEY3, NOW_UNIX - MAX_AGE),
            valid(timestamp=NOW_UNIX - MAX_AGE),
        ),
        case(
            "valid-at-now", "Dated now.", cosig_line(CHECKPOINT5, WITNESS_A, KEY3, NOW_UNIX), valid(timestamp=NOW_UNIX)
        ),
        case(
            "stale",
            "One second older than max_age.",
            cosig_line(CHECKPOINT5, WITNESS_A, KEY3, NOW_UNIX - MAX_AGE - 1),
            invalid("COSIGNATURE_STALE"),
        ),
        case(
            "future",
            "Dated one second after now.",
            cosig_line(CHECKPOINT5, WITNESS_A, KEY3, NOW_UNIX + 1),
            invalid("COSIGNATURE_FUTURE"),
        ),
        case("missing", "Only the log signed.", "", invalid("COSIGNATURE_MISSING")),
        case(
            "plain-note-key-id",
            "The witness signed under a type 0x01 key id: not its cosignature key, so no cosignature.",
            note_line(CHECKPOINT5, WITNESS_A, KEY3),
            invalid("COSIGNATURE_MISSING"),
        ),
        case("bad-signature", "The signature's last bit flipped.", flip_last(good), invalid("COSIGNATURE_INVALID")),
        case(
            "without-header",
            "Signed over the checkpoint alone, without the cosignature/v1 and time lines.",
            cosig_line(CHECKPOINT5, WITNESS_A, KEY3, at, header=False),
            invalid("COSIGNATURE_INVALID"),
        ),
        case(
            "timestamp-altered",
            "The timestamp bytes say one second later than the signed time line.",
            sig_line(
                WITNESS_A,
                key_id(WITNESS_A, 4, KEY3)
                + struct.pack(">Q", at + 1)
                + KEY3.sign(b"cosignature/v1\ntime %d\n" % at + CHECKPOINT5.encode()),
            ),
            invalid("COSIGNATURE_INVALID"),
        ),
        case(
            "no-timestamp",
            "A 64-byte signature with no timestamp before it.",
            sig_line(WITNESS_A, key_id(WITNESS_A, 4, KEY3) + KEY3.sign(CHECKPOINT5.encode())),
            invalid("COSIGNATURE_INVALID"),
        ),
        case(
            "good-then-bad",
            "A good cosignature, then a bad one by the same witness.",
            good + flip_last(good),
            invalid("COSIGNATURE_INVALID"),
        ),
        # Timestamps are 0 to 2^63 - 1: the largest is read (and is in the future), one past it fails.
        case(
            "timestamp-int63-max",
            "Dated 2^63 - 1, the largest timestamp: after now.",
            cosig_line(CHECKPOINT5, WITNESS_A, KEY3, 2**63 - 1),
            invalid("COSIGNATURE_FUTURE"),
        ),
        case(
            "timestamp-past-int63",
            "Dated 2^63, signed so: past the largest timestamp.",
            cosig_line(CHECKPOINT5, WITNESS_A, KEY3, 2**63),
            invalid("COSIGNATURE_INVALID"),
        ),
    ]


WA, WB, WC = vkey(WITNESS_A, 4, KEY3), vkey(WITNESS_B, 4, KEY4), vkey(WITNESS_C, 4, KEY5)


def policy_vectors() -> list[Json]:
    def case(name: str, description: str, text: str, cosigned: Sequence[str], expected: Json) -> Json:
        return vector("tlog-policy", name, description, {"policy": text, "cosigned": list(cosigned)}, expected)

    three = f"log {LOG_VKEY}\nwitness A {WA}\nwitness B {WB}\nwitness C {WC}\n"
    nested = three + "group AB any A B\ngroup top all AB C\nquorum top\n"
    return [
        case(
            "none", "quorum none: no cosignature needed.", f"log {LOG_VKEY}\nquorum none\n", [], valid(satisfied=True)
        ),
        case(
            "single-met", "One witness is the quorum and cosigned.", three + "quorum A\n", ["A"], valid(satisfied=True)
        ),
        case(
            "single-not-met",
            "One witness is the quorum; another cosigned.",
            three + "quorum A\n",
            ["B"],
            valid(satisfied=False),
        ),
        case(
            "two-of-three-met",
            "2 of 3, two cosigned.",
            three + "group g 2 A B C\nquorum g\n",
            ["A", "C"],
            valid(satisfied=True),
        ),
        case(
            "two-of-three-not-met",
            "2 of 3, one cosigned.",
            three + "group g 2 A B C\nquorum g\n",
            ["B"],
            valid(satisfied=False),
        ),
        case(
            "all-not-met",
            "all of 3, two cosigned.",
            three + "group g all A B C\nquorum g\n",
            ["A", "B"],
            valid(satisfied=False),
        ),
        case("nested-met", "(A or B) and C: B and C cosigned.", nested, ["B", "C"], valid(satisfied=True)),
        case(
            "nested-not-met", "(A or B) and C: A and B cosigned, C did not.", nested, ["A", "B"], valid(satisfied=False)
        ),
        case(
            "comments-and-whitespace",
            "Comments, blank lines, tabs and a URL are allowed.",
            f"# trust\n\n  log\t{LOG_VKEY} https://log.example/\nwitness A {WA}  \n\t# done\nquorum A\n",
            ["A"],
            valid(satisfied=True),
        ),
        case("no-quorum", "No quorum line.", three, [], invalid("POLICY_QUORUM_INVALID")),
        case("two-quorums", "Two quorum lines.", three + "quorum A\nquorum B\n", [], invalid("POLICY_QUORUM_INVALID")),
        case(
            "undefined-member",
            "A group names a witness defined later.",
            f"group g any A\nwitness A {WA}\nquorum g\n",
            [],
            invalid("POLICY_NAME_UNDEFINED"),
        ),
        case(
            "undefined-quorum",
            "The quorum names nothing defined.",
            three + "quorum D\n",
            [],
            invalid("POLICY_NAME_UNDEFINED"),
        ),
        case(
            "duplicate-name",
            "Two witnesses named A.",
            f"witness A {WA}\nwitness A {WB}\nquorum A\n",
            [],
            invalid("POLICY_NAME_DUPLICATE"),
        ),
        case(
            "duplicate-member",
            "A group lists A twice.",
            three + "group g 1 A A\nquorum g\n",
            [],
            invalid("POLICY_NAME_DUPLICATE"),
        ),
        case(
            "none-defined",
            "A witness named none.",
            f"witness none {WA}\nquorum none\n",
            [],
            invalid("POLICY_NAME_DUPLICATE"),
        ),
        case(
            "duplicate-key",
            "One witness key under two names.",
            f"witness A {WA}\nwitness B {vkey('other-name.example', 4, KEY3)}\nquorum A\n",
            [],
            invalid("POLICY_KEY_DUPLICATE"),
        ),
        case("threshold-zero", "k = 0.", three + "group g 0 A B\nquorum g\n", [], invalid("POLICY_THRESHOLD_INVALID")),
        case(
            "threshold-over-n",
            "k = 3 of 2.",
            three + "group g 3 A B\nquorum g\n",
            [],
            invalid("POLICY_THRESHOLD_INVALID"),
        ),
        case(
            "threshold-leading-zero",
            "k = 02.",
            three + "group g 02 A B C\nquorum g\n",
            [],
            invalid("POLICY_THRESHOLD_INVALID"),
        ),
        case(
            "witness-with-log-key-type",
            "A witness vkey of signature type 0x01.",
            f"witness A {vkey(WITNESS_A, 1, KEY3)}\nquorum A\n",
            [],
            invalid("POLICY_KEY_INVALID"),
        ),
        case(
            "vkey-wrong-key-id",
            "A vkey whose key id is not its key's.",
            f"witness A {WITNESS_A}+00000000+{WA.rsplit('+', 1)[1]}\nquorum A\n",
            [],
            invalid("POLICY_KEY_INVALID"),
        ),
        case(
            "unknown-keyword",
            "A line that is no policy line.",
            three + "witnesses 2\nquorum A\n",
            [],
            invalid("POLICY_MALFORMED"),
        ),
        case(
            "threshold-past-uint64",
            "A group threshold of 2^64, written without leading zeros.",
            three + f"group g {2**64} A B C\nquorum g\n",
            ["A", "B", "C"],
            invalid("POLICY_THRESHOLD_INVALID"),
        ),
        case("crlf", "Lines end in CR LF.", f"log {LOG_VKEY}\r\nquorum none\r\n", [], invalid("POLICY_MALFORMED")),
        case(
            "missing-final-newline",
            "No newline after the quorum.",
            f"log {LOG_VKEY}\nquorum none",
            [],
            invalid("POLICY_MALFORMED"),
        ),
    ]


ENTRIES = [b"memstore-entry/v1\ntype publish\nn %d\n" % n for n in range(7)]
LEAVES = [leaf(e) for e in ENTRIES]


def signed_checkpoint(size: int, *, origin: str = LOG, when: int = NOW_UNIX - 60, witnesses: str = "AB") -> str:
    body = f"{origin}\n{size}\n{b64(mth(LEAVES[:size]))}\n"
    keys = {"A": (WITNESS_A, KEY3), "B": (WITNESS_B, KEY4), "C": (WITNESS_C, KEY5)}
    return (
        body
        + "\n"
        + note_line(body, origin, KEY1)
        + "".join(cosig_line(body, keys[w][0], keys[w][1], when) for w in witnesses)
    )


def proof_text(
    index: int,
    hashes: Sequence[bytes],
    checkpoint: str,
    *,
    header: str = "c2sp.org/tlog-proof@v1",
    index_text: str | None = None,
    extra: str = "",
) -> str:
    lines = [header] + ([extra] if extra else []) + [f"index {index if index_text is None else index_text}"]
    return "".join(line + "\n" for line in lines + [b64(h) for h in hashes]) + "\n" + checkpoint


def proof_vectors() -> list[Json]:
    two_of_three = f"log {LOG_VKEY}\nwitness A {WA}\nwitness B {WB}\nwitness C {WC}\ngroup g 2 A B C\nquorum g\n"

    def case(
        name: str, description: str, text: str, expected: Json, *, entry: int = 3, policy: str = two_of_three
    ) -> Json:
        inputs = {
            "entry": b64(ENTRIES[entry]),
            "proof": text,
            "log": LOG_VKEY,
            "policy": policy,
            "now": rfc3339(NOW),
            "max_age_seconds": MAX_AGE,
        }
        return vector("tlog-proof", name, description, inputs, expected)

    cp7 = signed_checkpoint(7)
    p3 = path(3, LEAVES[:7])
    bad_log = signed_checkpoint(7).replace(
        note_line(f"{LOG}\n7\n{b64(mth(LEAVES))}\n", LOG, KEY1),
        flip_last(note_line(f"{LOG}\n7\n{b64(mth(LEAVES))}\n", LOG, KEY1)),
    )
    other_log_body = f"{LOG}\n7\n{b64(mth(LEAVES))}\n"
    return [
        case("valid", "Entry 3 of 7, cosigned by two of three witnesses.", proof_text(3, p3, cp7), valid(index=3)),
        case(
            "valid-size-1",
            "The only entry of a one-entry log: an empty path.",
            proof_text(0, [], signed_checkpoint(1)),
            valid(index=0),
            entry=0,
        ),
        case("valid-last-entry", "Entry 6 of 7.", proof_text(6, path(6, LEAVES[:7]), cp7), valid(index=6), entry=6),
        case(
            "valid-extra",
            "An extra line before the index.",
            proof_text(3, p3, cp7, extra="extra aGVsbG8="),
            valid(index=3),
        ),
        case(
            "valid-quorum-none",
            "No witnesses required, none cosigned.",
            proof_text(3, p3, signed_checkpoint(7, witnesses="")),
            valid(index=3),
            policy=f"log {LOG_VKEY}\nquorum none\n",
        ),
        case(
            "other-entry",
            "The proof is for entry 3; entry 4 is checked.",
            proof_text(3, p3, cp7),
            invalid("TLOG_PROOF_INCLUSION_INVALID"),
            entry=4,
        ),
        case(
            "path-one-short",
            "The path lacks its last hash.",
            proof_text(3, p3[:-1], cp7),
            invalid("TLOG_PROOF_INCLUSION_INVALID"),
        ),
        case(
            "path-one-long",
            "The path has one hash too many.",
            proof_text(3, [*p3, p3[0]], cp7),
            invalid("TLOG_PROOF_INCLUSION_INVALID"),
        ),
        case(
            "index-out-of-range",
            "Index 7 in a tree of 7.",
            proof_text(7, p3, cp7),
            invalid("TLOG_PROOF_INCLUSION_INVALID"),
        ),
        case(
            "index-leading-zero",
            "Index written 03.",
            proof_text(3, p3, cp7, index_text="03"),
            invalid("TLOG_PROOF_MALFORMED"),
        ),
        case(
            "wrong-header",
            "The first line is not c2sp.org/tlog-proof@v1.",
            proof_text(3, p3, cp7, header="c2sp.org/tlog-proof@v2"),
            invalid("TLOG_PROOF_MALFORMED"),
        ),
        case(
            "path-hash-unpadded",
            "A path hash without padding.",
            proof_text(3, p3, cp7).replace(b64(p3[0]), b64(p3[0]).rstrip("="), 1),
            invalid("TLOG_PROOF_MALFORMED"),
        ),
        case(
            "crlf", "Lines end in CR LF.", proof_text(3, p3, cp7).replace("\n", "\r\n"), invalid("TLOG_PROOF_MALFORMED")
        ),
        # An index is 0 to 2^63 - 1: the largest is read (and is not in a tree of 7), one past it is malformed.
        case(
            "index-int63-max",
            "Index 2^63 - 1 in a tree of 7.",
            proof_text(3, p3, cp7, index_text=str(2**63 - 1)),
            invalid("TLOG_PROOF_INCLUSION_INVALID"),
        ),
        case(
            "index-past-int63",
            "Index 2^63: past the largest index.",
            proof_text(3, p3, cp7, index_text=str(2**63)),
            invalid("TLOG_PROOF_MALFORMED"),
        ),
        case(
            "log-signature-invalid",
            "The log's signature does not verify.",
            proof_text(3, p3, bad_log),
            invalid("TLOG_PROOF_LOG_SIGNATURE_INVALID"),
        ),
        case(
            "other-log-key",
            "The checkpoint is signed by a key the policy does not name for the log.",
            proof_text(3, p3, other_log_body + "\n" + note_line(other_log_body, LOG, KEY2)),
            invalid("TLOG_PROOF_LOG_SIGNATURE_INVALID"),
        ),
        case(
            "quorum-not-met",
            "One of the two cosignatures needed.",
            proof_text(3, p3, signed_checkpoint(7, witnesses="A")),
            invalid("TLOG_PROOF_QUORUM_NOT_MET"),
        ),
        case(
            "cosignatures-stale",
            "Two cosignatures, both older than the allowed age.",
            proof_text(3, p3, signed_checkpoint(7, when=NOW_UNIX - MAX_AGE - 1)),
            invalid("TLOG_PROOF_COSIGNATURE_STALE"),
        ),
        case(
            "cosignatures-future",
            "Two cosignatures dated after now.",
            proof_text(3, p3, signed_checkpoint(7, when=NOW_UNIX + 1)),
            invalid("TLOG_PROOF_COSIGNATURE_FUTURE"),
        ),
        case(
            "cosignature-invalid",
            "Quorum met, but a third known witness's cosignature does not verify.",
            proof_text(3, p3, signed_checkpoint(7) + flip_last(cosig_line(other_log_body, WITNESS_C, KEY5, NOW_UNIX))),
            invalid("TLOG_PROOF_COSIGNATURE_INVALID"),
        ),
    ]


def tlog_vectors() -> list[Json]:
    return note_vectors() + checkpoint_vectors() + cosignature_vectors() + policy_vectors() + proof_vectors()
