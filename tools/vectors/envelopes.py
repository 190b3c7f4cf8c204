"""Envelope vectors: verification steps 2 and 3 alone (decode the DSSE envelope, check signatures against a policy).

The payload is a small in-toto statement; which signatures count, and the reason when too few do, is what they pin.
"""

from __future__ import annotations

from tools.vectors.common import (
    DAY,
    KEY1,
    KEY2,
    KEY3,
    NOW,
    PREDICATE_TYPE,
    STATEMENT_PAYLOAD_TYPE,
    STATEMENT_TYPE,
    Json,
    b64,
    canonical,
    envelope_json,
    invalid,
    rfc3339,
    sha256_hex,
    signed,
    valid,
    vector,
)

T = STATEMENT_PAYLOAD_TYPE


def _statement(nonce: int) -> bytes:
    return canonical(
        {
            "_type": STATEMENT_TYPE,
            "subject": [],
            "predicateType": PREDICATE_TYPE,
            # '?' and '~' at every offset mod 3 put both '/' and '+' into the standard base64 of ASCII text.
            "predicate": {"note": "memos envelope test vector ??? ~~~", "nonce": nonce},
        }
    )


def _payload() -> bytes:
    """The first statement whose base64 needs padding and, with KEY1's signature, uses both '+' and '/'.

    Only such a payload tells URL-safe from standard base64 and padded from unpadded.
    """
    for nonce in range(1000):
        payload = _statement(nonce)
        text, sig = b64(payload), KEY1.signature(T, payload)["sig"]
        if len(payload) % 3 and all(c in text and c in sig for c in "+/"):
            return payload
    raise AssertionError("no nonce below 1000 gives a payload and signature using both '+' and '/'")


PAYLOAD = _payload()


def _env(
    case: str,
    description: str,
    envelope: str,
    expected: Json,
    *,
    trusted: list[Json] | None = None,
    threshold: int = 1,
) -> Json:
    inputs = {
        "now": rfc3339(NOW),
        "trusted_keys": [KEY1.trusted()] if trusted is None else trusted,
        "threshold": threshold,
        "required_key_ids": [],
        "envelope": envelope,
    }
    return vector("envelope", case, description, inputs, expected)


def _ok() -> Json:
    return valid(payload_sha256=sha256_hex(PAYLOAD))


def _one_char_changed(text: str, index: int) -> str:
    return text[:index] + ("B" if text[index] == "A" else "A") + text[index + 1 :]


def envelope_vectors() -> list[Json]:
    good = KEY1.signature(T, PAYLOAD)
    both = [KEY1.trusted(), KEY2.trusted()]
    tampered = bytearray(PAYLOAD)
    tampered[PAYLOAD.index(b"memos")] ^= 0x20  # "memos" -> "Memos": still JSON, no longer what was signed
    url_safe = [{"keyid": KEY1.key_id, "sig": good["sig"].replace("+", "-").replace("/", "_")}]
    return [
        _env("valid-single", "One signature by the one trusted key, threshold 1.", signed(T, PAYLOAD, KEY1), _ok()),
        _env(
            "valid-two-of-two",
            "Two trusted keys both sign, threshold 2.",
            signed(T, PAYLOAD, KEY1, KEY2),
            _ok(),
            trusted=both,
            threshold=2,
        ),
        _env(
            "valid-extra-bad-signature",
            "The threshold is met by one key; a second, broken signature by another trusted key does not undo it.",
            envelope_json(T, PAYLOAD, [good, {"keyid": KEY2.key_id, "sig": good["sig"]}]),
            _ok(),
            trusted=both,
        ),
        _env(
            "flipped-payload-byte",
            "One byte of the signed payload changed after signing.",
            envelope_json(T, bytes(tampered), [good]),
            invalid("BUNDLE_SIGNATURE_INVALID"),
        ),
        _env(
            "signature-over-raw-payload",
            "The signature is over the payload bytes instead of the PAE.",
            envelope_json(T, PAYLOAD, [{"keyid": KEY1.key_id, "sig": b64(KEY1.sign(PAYLOAD))}]),
            invalid("BUNDLE_SIGNATURE_INVALID"),
        ),
        _env(
            "wrong-payload-type",
            "A properly signed envelope whose payloadType is not application/vnd.in-toto+json.",
            signed("application/json", PAYLOAD, KEY1),
            invalid("BUNDLE_PAYLOAD_TYPE_INVALID"),
        ),
        _env(
            "one-key-twice",
            "One key signs twice toward threshold 2: a key counts once.",
            envelope_json(T, PAYLOAD, [good, good]),
            invalid("BUNDLE_THRESHOLD_NOT_MET"),
            trusted=both,
            threshold=2,
        ),
        _env(
            "two-of-two-one-expired",
            "Threshold 2, both keys sign, one is past its notAfter.",
            signed(T, PAYLOAD, KEY1, KEY2),
            invalid("BUNDLE_SIGNER_EXPIRED"),
            trusted=[KEY1.trusted(), KEY2.trusted(not_after=NOW - DAY)],
            threshold=2,
        ),
        _env(
            "signer-expired",
            "The only signer's notAfter is before now.",
            signed(T, PAYLOAD, KEY1),
            invalid("BUNDLE_SIGNER_EXPIRED"),
            trusted=[KEY1.trusted(not_before=NOW - 30 * DAY, not_after=NOW - DAY)],
        ),
        _env(
            "signer-expired-at-now",
            "The signer's notAfter equals now: the validity window is [notBefore, notAfter).",
            signed(T, PAYLOAD, KEY1),
            invalid("BUNDLE_SIGNER_EXPIRED"),
            trusted=[KEY1.trusted(not_after=NOW)],
        ),
        _env(
            "signer-not-yet-valid",
            "The only signer's notBefore is after now.",
            signed(T, PAYLOAD, KEY1),
            invalid("BUNDLE_SIGNER_EXPIRED"),
            trusted=[KEY1.trusted(not_before=NOW + DAY)],
        ),
        _env(
            "valid-inside-window",
            "The signer's window [notBefore, notAfter) contains now; notBefore equals now.",
            signed(T, PAYLOAD, KEY1),
            _ok(),
            trusted=[KEY1.trusted(not_before=NOW, not_after=NOW + DAY)],
        ),
        _env(
            "signer-revoked",
            "The only signer was revoked before now.",
            signed(T, PAYLOAD, KEY1),
            invalid("BUNDLE_SIGNER_REVOKED"),
            trusted=[KEY1.trusted(revoked_at=NOW - DAY)],
        ),
        _env(
            "signer-revoked-and-expired",
            "One signer revoked, another expired, threshold 2: revoked takes precedence.",
            signed(T, PAYLOAD, KEY1, KEY2),
            invalid("BUNDLE_SIGNER_REVOKED"),
            trusted=[KEY1.trusted(not_after=NOW - DAY), KEY2.trusted(revoked_at=NOW - DAY)],
            threshold=2,
        ),
        _env(
            "bad-signature-before-revoked",
            "A broken signature by a trusted key and one by a revoked key: SIGNATURE_INVALID takes precedence.",
            envelope_json(
                T, PAYLOAD, [{"keyid": KEY1.key_id, "sig": b64(KEY1.sign(PAYLOAD))}, KEY2.signature(T, PAYLOAD)]
            ),
            invalid("BUNDLE_SIGNATURE_INVALID"),
            trusted=[KEY1.trusted(), KEY2.trusted(revoked_at=NOW - DAY)],
        ),
        _env(
            "valid-revoked-after-now",
            "The signer is revoked only from a time after now, so it still counts.",
            signed(T, PAYLOAD, KEY1),
            _ok(),
            trusted=[KEY1.trusted(revoked_at=NOW + DAY)],
        ),
        _env(
            "untrusted-signer",
            "Signed by a key that is not trusted.",
            signed(T, PAYLOAD, KEY3),
            invalid("BUNDLE_UNTRUSTED_SIGNER"),
        ),
        _env(
            "no-signatures",
            "An envelope with an empty signatures list.",
            envelope_json(T, PAYLOAD, []),
            invalid("BUNDLE_UNTRUSTED_SIGNER"),
        ),
        _env(
            "valid-urlsafe-base64",
            "Payload and signature in URL-safe base64 ('-' and '_').",
            envelope_json(T, b64(PAYLOAD, urlsafe=True), url_safe),
            _ok(),
        ),
        _env(
            "valid-unpadded-base64",
            "Payload and signature in standard base64 without '=' padding.",
            envelope_json(T, b64(PAYLOAD, padded=False), [{"keyid": KEY1.key_id, "sig": good["sig"].rstrip("=")}]),
            _ok(),
        ),
        _env(
            "valid-unknown-fields",
            "Unknown fields in the envelope and in its signature objects are ignored.",
            envelope_json(
                T,
                PAYLOAD,
                [{**good, "cert": "unused", "x-extension": {"n": 1}}],
                extra={"note": "ignored"},
                signedAt="2026-06-01T00:00:00Z",
            ),
            _ok(),
        ),
        _env(
            "valid-keyid-names-other-trusted-key",
            "The keyid hint names another trusted key, but the signature is by a trusted key: it counts.",
            envelope_json(T, PAYLOAD, [KEY1.signature(T, PAYLOAD, keyid=KEY2.key_id)]),
            _ok(),
            trusted=both,
        ),
        _env(
            "valid-keyid-empty",
            "The keyid hint is empty; the signature is by a trusted key, so it counts.",
            envelope_json(T, PAYLOAD, [KEY1.signature(T, PAYLOAD, keyid="")]),
            _ok(),
        ),
        _env(
            "malformed-json",
            "The envelope is not JSON (cut short).",
            signed(T, PAYLOAD, KEY1)[:-2],
            invalid("BUNDLE_ENVELOPE_MALFORMED"),
        ),
        _env(
            "bad-base64-payload",
            "The payload is not base64.",
            envelope_json(T, "not base64!", [good]),
            invalid("BUNDLE_ENVELOPE_MALFORMED"),
        ),
        _env(
            "bad-base64-signature",
            "A signature's sig is not base64.",
            envelope_json(T, PAYLOAD, [{"keyid": KEY1.key_id, "sig": "***"}]),
            invalid("BUNDLE_ENVELOPE_MALFORMED"),
        ),
        _env(
            "mixed-base64-alphabets",
            "The payload mixes the standard and URL-safe alphabets ('+' and '_'), which is neither encoding.",
            envelope_json(T, b64(PAYLOAD).replace("/", "_", 1), [good]),
            invalid("BUNDLE_ENVELOPE_MALFORMED"),
        ),
        _env(
            "signatures-not-a-list",
            "The signatures field is an object, not a list.",
            envelope_json(T, PAYLOAD, good),
            invalid("BUNDLE_ENVELOPE_MALFORMED"),
        ),
    ]
