"""Marketplace vectors: log entries (memstore-entry/v1), terms (ODRL-named JSON) and license grants (DSSE).

Entries and terms are literal bytes written from docs/marketplace.md; grants are statements built here with the
vector keys (KEY3 is the marketplace key), so that each vector pins the format rather than mirroring the code.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tools.vectors.common import (
    DAY,
    KEY1,
    KEY2,
    KEY3,
    NOW,
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

GRANT_TYPE = "https://memos-grpc.dev/LicenseGrant/v1"
RELEASE = "listings/weather-facts/releases/1.2.0"
RELEASE_DIGEST = sha256_hex(b"the release statement of weather-facts 1.2.0")
LICENSEE = "principals/buyer"
#: The licensee's key is KEY2; the marketplace key is KEY3.
MARKETPLACE = KEY3
ORIGIN = "market.example/log"

D1, D2 = sha256_hex(b"subject"), sha256_hex(b"statement")
SIGNER = KEY1.key_id


def _entry_lines(kind: str, *extra: str, subject: str = D1, statement: str = D2, signer: str = SIGNER) -> bytes:
    lines = ["memstore-entry/v1", f"type {kind}", f"subject sha256:{subject}", f"statement sha256:{statement}"]
    lines += [f"signer {signer}", *extra]
    return ("\n".join(lines) + "\n").encode()


def _entry(case: str, description: str, data: bytes, expected: Json) -> Json:
    return vector("entry", case, description, {"entry": b64(data)}, expected)


def _entry_valid(kind: str, ref: int | None) -> Json:
    return valid(type=kind, subject=f"sha256:{D1}", statement=f"sha256:{D2}", signer=SIGNER, ref=ref)


def entry_vectors() -> list[Json]:
    revoke = _entry_lines("revoke", "ref 7")
    cases = [
        _entry(f"valid-{kind}", f"A {kind} entry.", _entry_lines(kind), _entry_valid(kind, None))
        for kind in ("publish", "grant", "key")
    ]
    cases += [
        _entry(
            "valid-yank",
            "A yank of the publish entry at index 0.",
            _entry_lines("yank", "ref 0"),
            _entry_valid("yank", 0),
        ),
        _entry("valid-revoke", "A revoke of the grant entry at index 7.", revoke, _entry_valid("revoke", 7)),
        _entry(
            "valid-ref-max",
            "A revoke naming the largest index a log holds (2^63 - 2).",
            _entry_lines("revoke", f"ref {2**63 - 2}"),
            _entry_valid("revoke", 2**63 - 2),
        ),
    ]
    bad: list[tuple[str, str, bytes, str]] = [
        ("too-large", "65,537 bytes: over the 64 KiB bound.", revoke + b"x" * (65537 - len(revoke)), "ENTRY_TOO_LARGE"),
        ("crlf", 'Lines end with "\\r\\n".', revoke.replace(b"\n", b"\r\n"), "ENTRY_MALFORMED"),
        ("no-final-newline", 'The last line lacks its "\\n".', revoke[:-1], "ENTRY_MALFORMED"),
        ("not-ascii", "A UTF-8 byte order mark before the header.", b"\xef\xbb\xbf" + revoke, "ENTRY_MALFORMED"),
        ("version-2", "The header names version 2.", revoke.replace(b"/v1", b"/v2"), "ENTRY_VERSION_UNSUPPORTED"),
        (
            "bad-header",
            "The header is misspelt.",
            revoke.replace(b"memstore-entry", b"memstore-entries"),
            "ENTRY_MALFORMED",
        ),
        (
            "lines-swapped",
            "statement comes before subject.",
            _entry_lines("grant")
            .replace(b"subject sha256:" + D1.encode(), b"@")
            .replace(b"statement sha256:" + D2.encode(), b"subject sha256:" + D1.encode())
            .replace(b"@", b"statement sha256:" + D2.encode()),
            "ENTRY_MALFORMED",
        ),
        (
            "double-space",
            "Two spaces after 'type'.",
            _entry_lines("grant").replace(b"type ", b"type  "),
            "ENTRY_TYPE_INVALID",
        ),
        ("blank-line", "A blank line at the end.", _entry_lines("grant") + b"\n", "ENTRY_MALFORMED"),
        ("type-unknown", "type is 'delete'.", _entry_lines("delete"), "ENTRY_TYPE_INVALID"),
        ("type-uppercase", "type is 'Grant'.", _entry_lines("Grant"), "ENTRY_TYPE_INVALID"),
        (
            "subject-uppercase-hex",
            "The subject digest in upper-case hex.",
            _entry_lines("grant", subject=D1.upper()),
            "ENTRY_DIGEST_INVALID",
        ),
        (
            "subject-short",
            "The subject digest is 63 hex digits.",
            _entry_lines("grant", subject=D1[:63]),
            "ENTRY_DIGEST_INVALID",
        ),
        (
            "statement-no-prefix",
            "The statement digest without 'sha256:'.",
            _entry_lines("grant").replace(b"statement sha256:", b"statement "),
            "ENTRY_DIGEST_INVALID",
        ),
        (
            "signer-short",
            "The signer key id is 62 hex digits.",
            _entry_lines("grant", signer=SIGNER[:62]),
            "ENTRY_SIGNER_INVALID",
        ),
        (
            "signer-uppercase",
            "The signer key id in upper case.",
            _entry_lines("grant", signer=SIGNER.upper()),
            "ENTRY_SIGNER_INVALID",
        ),
        ("ref-missing", "A revoke without ref.", _entry_lines("revoke"), "ENTRY_REF_MISSING"),
        ("ref-on-grant", "A grant with a ref line.", _entry_lines("grant", "ref 3"), "ENTRY_REF_UNEXPECTED"),
        ("ref-leading-zero", "ref 07.", _entry_lines("yank", "ref 07"), "ENTRY_REF_INVALID"),
        ("ref-plus", "ref +7.", _entry_lines("yank", "ref +7"), "ENTRY_REF_INVALID"),
        ("ref-negative", "ref -1.", _entry_lines("yank", "ref -1"), "ENTRY_REF_INVALID"),
        (
            "ref-too-large",
            "ref 2^63 - 1: one past the largest index.",
            _entry_lines("yank", f"ref {2**63 - 1}"),
            "ENTRY_REF_INVALID",
        ),
        ("ref-empty", "'ref ' with no number.", _entry_lines("yank", "ref "), "ENTRY_REF_INVALID"),
        ("extra-line", "A revoke with a line after ref.", _entry_lines("revoke", "ref 7", "note x"), "ENTRY_MALFORMED"),
    ]
    return cases + [_entry(case, text, data, invalid(reason)) for case, text, data, reason in bad]


def _permission(action: str, *constraints: tuple[str, Any]) -> Json:
    item: Json = {"action": action}
    if constraints:
        item["constraint"] = [{"leftOperand": o, "operator": "lteq", "rightOperand": v} for o, v in constraints]
    return item


#: The terms every grant vector carries: import and search freely, recall 3 times within 30 days, no export.
BASE_TERMS: Json = {
    "license": "CC-BY-4.0 OR LicenseRef-memstore-ai-1.0",
    "permission": [
        _permission("import"),
        _permission("search", ("dateTime", "2026-12-31T23:59:59Z")),
        _permission("recall", ("count", 3), ("elapsedTime", "P30D")),
    ],
    "prohibition": [{"action": "export"}],
    "priceLabel": "EUR 10 a year",
    "maxOfflineSeconds": 86400,
}

#: Uses a buyer's governance checks; granted_at is the grant's notBefore (NOW - 1 day).
CHECKS = [
    {"action": "import", "uses_so_far": 0, "now": rfc3339(NOW)},
    {"action": "recall", "uses_so_far": 0, "now": rfc3339(NOW)},
    {"action": "recall", "uses_so_far": 2, "now": rfc3339(NOW)},
    {"action": "recall", "uses_so_far": 3, "now": rfc3339(NOW)},
    {"action": "recall", "uses_so_far": 0, "now": rfc3339(NOW + 30 * DAY)},
    {"action": "search", "uses_so_far": 100, "now": rfc3339(datetime(2026, 12, 31, 23, 59, 59, tzinfo=NOW.tzinfo))},
    {"action": "search", "uses_so_far": 100, "now": rfc3339(datetime(2027, 1, 1, tzinfo=NOW.tzinfo))},
    {"action": "export", "uses_so_far": 0, "now": rfc3339(NOW)},
    {"action": "transform", "uses_so_far": 0, "now": rfc3339(NOW)},
]
DECISIONS = [
    {"allowed": True, "reason": "", "remaining": None},
    {"allowed": True, "reason": "", "remaining": 2},
    {"allowed": True, "reason": "", "remaining": 0},
    {"allowed": False, "reason": "TERMS_COUNT_EXHAUSTED", "remaining": 0},
    {"allowed": False, "reason": "TERMS_ELAPSED_TIME_PASSED", "remaining": 0},
    {"allowed": True, "reason": "", "remaining": None},
    {"allowed": False, "reason": "TERMS_DATETIME_PASSED", "remaining": 0},
    {"allowed": False, "reason": "TERMS_ACTION_PROHIBITED", "remaining": 0},
    {"allowed": False, "reason": "TERMS_ACTION_NOT_PERMITTED", "remaining": 0},
]


def _terms_bytes(document: Json) -> bytes:
    return json.dumps(document, indent=2).encode() + b"\n"


def _terms(case: str, description: str, data: bytes, expected: Json, **inputs: Any) -> Json:
    return vector("terms", case, description, {"terms": b64(data), **inputs}, expected)


def _with(**changes: Any) -> Json:
    return {**BASE_TERMS, **changes}


def terms_vectors() -> list[Json]:
    base = _terms_bytes(BASE_TERMS)
    minimal = b'{"license":"MIT","permission":[],"maxOfflineSeconds":1}'
    at_bounds = _terms_bytes(
        _with(permission=[_permission("recall", ("count", 2**53 - 1), ("elapsedTime", "P36500D"))])
    )
    cases = [
        _terms(
            "valid",
            "The grant vectors' terms, indented; the checks are uses granted on NOW - 1 day.",
            base,
            valid(
                digest=sha256_hex(base),
                license=BASE_TERMS["license"],
                permitted=["import", "search", "recall"],
                decisions=DECISIONS,
            ),
            granted_at=rfc3339(NOW - DAY),
            checks=CHECKS,
        ),
        _terms(
            "valid-count-and-elapsed-max",
            "count 2^53 - 1 and elapsedTime P36500D, each the largest its constraint allows.",
            at_bounds,
            valid(digest=sha256_hex(at_bounds), license=BASE_TERMS["license"], permitted=["recall"]),
        ),
        _terms(
            "valid-minimal",
            "Only the required members; an empty permission list permits nothing.",
            minimal,
            valid(digest=sha256_hex(minimal), license="MIT", permitted=[]),
        ),
        _terms(
            "valid-with-exception",
            "A license with a WITH exception and a nested group; elapsedTime with hours and minutes.",
            canonical(
                {
                    "license": "(GPL-2.0-or-later WITH Classpath-exception-2.0 OR MIT) AND Apache-2.0",
                    "permission": [_permission("transform", ("elapsedTime", "P1DT2H30M"))],
                    "maxOfflineSeconds": 31622400,
                }
            ),
            valid(
                digest=sha256_hex(
                    canonical(
                        {
                            "license": "(GPL-2.0-or-later WITH Classpath-exception-2.0 OR MIT) AND Apache-2.0",
                            "permission": [_permission("transform", ("elapsedTime", "P1DT2H30M"))],
                            "maxOfflineSeconds": 31622400,
                        }
                    )
                ),
                license="(GPL-2.0-or-later WITH Classpath-exception-2.0 OR MIT) AND Apache-2.0",
                permitted=["transform"],
            ),
        ),
    ]
    bad: list[tuple[str, str, bytes, str]] = [
        (
            "too-large",
            "65,537 bytes (a long priceLabel is refused later; size is checked first).",
            base[:-2] + b" " * (65537 - len(base)) + b"}\n",
            "TERMS_TOO_LARGE",
        ),
        ("bom", "A UTF-8 byte order mark first.", b"\xef\xbb\xbf" + minimal, "TERMS_ENCODING_INVALID"),
        (
            "not-utf8",
            "A Latin-1 byte in priceLabel.",
            minimal[:-1] + b',"priceLabel":"caf\xe9"}',
            "TERMS_ENCODING_INVALID",
        ),
        (
            "lone-surrogate",
            "priceLabel holds an unpaired surrogate escape.",
            minimal[:-1] + b',"priceLabel":"\\ud800"}',
            "TERMS_ENCODING_INVALID",
        ),
        ("utf16", "The minimal terms in UTF-16.", minimal.decode().encode("utf-16"), "TERMS_ENCODING_INVALID"),
        ("not-json", "A trailing comma.", minimal[:-1] + b",}", "TERMS_JSON_INVALID"),
        ("not-object", "A JSON array.", b"[]", "TERMS_JSON_INVALID"),
        (
            "duplicate-member",
            "license twice.",
            b'{"license":"MIT","license":"ISC","permission":[],"maxOfflineSeconds":1}',
            "TERMS_DUPLICATE_MEMBER",
        ),
        (
            "duplicate-member-nested",
            "operator twice in one constraint.",
            b'{"license":"MIT","permission":[{"action":"recall","constraint":[{"leftOperand":"count","operator":"lteq","operator":"lteq","rightOperand":1}]}],"maxOfflineSeconds":1}',
            "TERMS_DUPLICATE_MEMBER",
        ),
        ("nan", "maxOfflineSeconds is NaN.", minimal.replace(b":1}", b":NaN}"), "TERMS_NUMBER_INVALID"),
        ("infinity", "maxOfflineSeconds is Infinity.", minimal.replace(b":1}", b":Infinity}"), "TERMS_NUMBER_INVALID"),
        ("fraction", "maxOfflineSeconds is 60.0.", minimal.replace(b":1}", b":60.0}"), "TERMS_NUMBER_INVALID"),
        ("exponent", "maxOfflineSeconds is 6e1.", minimal.replace(b":1}", b":6e1}"), "TERMS_NUMBER_INVALID"),
        (
            "integer-past-2-53",
            "maxOfflineSeconds is 2^53.",
            minimal.replace(b":1}", b":9007199254740992}"),
            "TERMS_NUMBER_INVALID",
        ),
        (
            "unknown-member",
            "A member the grammar does not name.",
            minimal[:-1] + b',"currency":"EUR"}',
            "TERMS_UNKNOWN_MEMBER",
        ),
        (
            "member-case",
            "'License' for 'license': names are case-sensitive.",
            minimal.replace(b'"license"', b'"License"'),
            "TERMS_UNKNOWN_MEMBER",
        ),
        ("missing-license", "No license.", b'{"permission":[],"maxOfflineSeconds":1}', "TERMS_MISSING_MEMBER"),
        ("missing-max-offline", "No maxOfflineSeconds.", b'{"license":"MIT","permission":[]}', "TERMS_MISSING_MEMBER"),
        ("max-offline-zero", "maxOfflineSeconds 0.", minimal.replace(b":1}", b":0}"), "TERMS_VALUE_INVALID"),
        ("max-offline-negative", "maxOfflineSeconds -1.", minimal.replace(b":1}", b":-1}"), "TERMS_VALUE_INVALID"),
        (
            "max-offline-too-large",
            "maxOfflineSeconds one past 366 days.",
            minimal.replace(b":1}", b":31622401}"),
            "TERMS_VALUE_INVALID",
        ),
        (
            "max-offline-string",
            "maxOfflineSeconds as a string.",
            minimal.replace(b":1}", b':"1"}'),
            "TERMS_VALUE_INVALID",
        ),
        ("price-label-empty", "An empty priceLabel.", minimal[:-1] + b',"priceLabel":""}', "TERMS_VALUE_INVALID"),
        (
            "price-label-too-long",
            "A priceLabel of 257 characters.",
            minimal[:-1] + b',"priceLabel":"' + b"x" * 257 + b'"}',
            "TERMS_VALUE_INVALID",
        ),
        (
            "price-label-control",
            "A newline in priceLabel.",
            minimal[:-1] + b',"priceLabel":"a\\nb"}',
            "TERMS_VALUE_INVALID",
        ),
        (
            "license-unknown",
            "An id not in the SPDX list.",
            minimal.replace(b'"MIT"', b'"MIT-2.0"'),
            "TERMS_LICENSE_UNKNOWN",
        ),
        (
            "license-document-ref",
            "A DocumentRef- reference.",
            minimal.replace(b'"MIT"', b'"DocumentRef-x:LicenseRef-y"'),
            "TERMS_LICENSE_UNKNOWN",
        ),
        (
            "license-lowercase",
            "'mit': ids are written as the SPDX list spells them.",
            minimal.replace(b'"MIT"', b'"mit"'),
            "TERMS_LICENSE_INVALID",
        ),
        (
            "license-deprecated",
            "GPL-2.0+, a deprecated id.",
            minimal.replace(b'"MIT"', b'"GPL-2.0+"'),
            "TERMS_LICENSE_INVALID",
        ),
        (
            "license-lowercase-operator",
            "'or' in lower case.",
            minimal.replace(b'"MIT"', b'"MIT or ISC"'),
            "TERMS_LICENSE_INVALID",
        ),
        ("license-syntax", "A dangling operator.", minimal.replace(b'"MIT"', b'"MIT OR"'), "TERMS_LICENSE_INVALID"),
        ("license-empty-group", "An empty group.", minimal.replace(b'"MIT"', b'"()"'), "TERMS_LICENSE_INVALID"),
        ("license-empty", "An empty license.", minimal.replace(b'"MIT"', b'""'), "TERMS_LICENSE_INVALID"),
        # license-expression reads the text (docs/marketplace.md): these pin how it cuts it into symbols.
        (
            "license-alias-with-space",
            "'GPL 2.0', an alias of two words: read as GPL-2.0-only, so not in canonical form.",
            minimal.replace(b'"MIT"', b'"GPL 2.0"'),
            "TERMS_LICENSE_INVALID",
        ),
        (
            "license-alias-with-space-or-unknown",
            "'GPL 2.0 OR Foo-1': the two-word alias is one known symbol, Foo-1 an unknown one.",
            minimal.replace(b'"MIT"', b'"GPL 2.0 OR Foo-1"'),
            "TERMS_LICENSE_UNKNOWN",
        ),
        (
            "license-alias-with-tab-or-unknown",
            "'GPL<tab>2.0 OR Foo': the alias's words may be apart by any whitespace.",
            minimal.replace(b'"MIT"', b'"GPL\\t2.0 OR Foo"'),
            "TERMS_LICENSE_UNKNOWN",
        ),
        (
            "license-unknown-words",
            "'Foo Bar': unknown words in a row are one unknown symbol, not two symbols without an operator.",
            minimal.replace(b'"MIT"', b'"Foo Bar"'),
            "TERMS_LICENSE_UNKNOWN",
        ),
        (
            "license-unit-separator-or-unknown",
            "'MIT<U+001F>OR<U+001F>Foo': U+001F is whitespace to the reader, so an OR of MIT and an unknown id.",
            minimal.replace(b'"MIT"', b'"MIT\\u001fOR\\u001fFoo"'),
            "TERMS_LICENSE_UNKNOWN",
        ),
        (
            "license-operator-after-parenthesis",
            "'(OR MIT': an operator right after an opening parenthesis.",
            minimal.replace(b'"MIT"', b'"(OR MIT"'),
            "TERMS_LICENSE_INVALID",
        ),
        (
            "license-group-then-unknown",
            "'MIT AND (Apache-2.0) Foo': the reader takes Foo as a third operand of the AND, so it is unknown.",
            minimal.replace(b'"MIT"', b'"MIT AND (Apache-2.0) Foo"'),
            "TERMS_LICENSE_UNKNOWN",
        ),
        (
            "license-with-unknown-exception",
            "'Foo WITH Bar': the symbol after WITH is not an exception.",
            minimal.replace(b'"MIT"', b'"Foo WITH Bar"'),
            "TERMS_LICENSE_INVALID",
        ),
        (
            "action-unknown",
            "The action 'sell'.",
            _terms_bytes(_with(permission=[_permission("sell")])),
            "TERMS_ACTION_UNKNOWN",
        ),
        (
            "action-case",
            "The action 'Recall'.",
            _terms_bytes(_with(permission=[_permission("Recall")])),
            "TERMS_ACTION_UNKNOWN",
        ),
        (
            "action-repeated",
            "recall permitted twice.",
            _terms_bytes(_with(permission=[_permission("recall"), _permission("recall")])),
            "TERMS_ACTION_REPEATED",
        ),
        (
            "prohibition-repeated",
            "export prohibited twice.",
            _terms_bytes(_with(prohibition=[{"action": "export"}, {"action": "export"}])),
            "TERMS_ACTION_REPEATED",
        ),
        (
            "prohibition-string",
            "A prohibition given as a bare string.",
            _terms_bytes(_with(prohibition=["export"])),
            "TERMS_VALUE_INVALID",
        ),
        ("prohibition-empty", "An empty prohibition list.", _terms_bytes(_with(prohibition=[])), "TERMS_VALUE_INVALID"),
        (
            "conflict",
            "import both permitted and prohibited.",
            _terms_bytes(_with(prohibition=[{"action": "import"}])),
            "TERMS_CONFLICT",
        ),
        (
            "permission-unknown-member",
            "A permission with a 'duty'.",
            _terms_bytes(_with(permission=[{"action": "import", "duty": []}])),
            "TERMS_UNKNOWN_MEMBER",
        ),
        (
            "permission-no-action",
            "A permission without action.",
            _terms_bytes(_with(permission=[{}])),
            "TERMS_MISSING_MEMBER",
        ),
        (
            "constraint-empty",
            "An empty constraint list.",
            _terms_bytes(_with(permission=[{"action": "import", "constraint": []}])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "constraint-operator",
            "The operator 'lt'.",
            _terms_bytes(
                _with(
                    permission=[
                        {
                            "action": "recall",
                            "constraint": [{"leftOperand": "count", "operator": "lt", "rightOperand": 3}],
                        }
                    ]
                )
            ),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "constraint-left-operand",
            "The left operand 'spatial'.",
            _terms_bytes(_with(permission=[_permission("recall", ("spatial", "EU"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "constraint-repeated",
            "count twice in one permission.",
            _terms_bytes(_with(permission=[_permission("recall", ("count", 1), ("count", 2))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "constraint-unknown-member",
            "A constraint with a 'unit'.",
            _terms_bytes(
                _with(
                    permission=[
                        {
                            "action": "recall",
                            "constraint": [
                                {"leftOperand": "count", "operator": "lteq", "rightOperand": 3, "unit": "x"}
                            ],
                        }
                    ]
                )
            ),
            "TERMS_UNKNOWN_MEMBER",
        ),
        (
            "count-zero",
            "count lteq 0.",
            _terms_bytes(_with(permission=[_permission("recall", ("count", 0))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "count-negative",
            "count lteq -1.",
            _terms_bytes(_with(permission=[_permission("recall", ("count", -1))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "count-string",
            "count as a string.",
            _terms_bytes(_with(permission=[_permission("recall", ("count", "3"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "date-time-offset",
            "A dateTime with +01:00.",
            _terms_bytes(_with(permission=[_permission("search", ("dateTime", "2026-12-31T23:59:59+01:00"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "date-time-fraction",
            "A dateTime with fractional seconds.",
            _terms_bytes(_with(permission=[_permission("search", ("dateTime", "2026-12-31T23:59:59.5Z"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "date-time-impossible",
            "February 30th.",
            _terms_bytes(_with(permission=[_permission("search", ("dateTime", "2026-02-30T00:00:00Z"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "elapsed-years",
            "P1Y: years depend on the calendar.",
            _terms_bytes(_with(permission=[_permission("recall", ("elapsedTime", "P1Y"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "elapsed-weeks",
            "P2W.",
            _terms_bytes(_with(permission=[_permission("recall", ("elapsedTime", "P2W"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "elapsed-empty-time",
            "P1DT: a T with nothing after it.",
            _terms_bytes(_with(permission=[_permission("recall", ("elapsedTime", "P1DT"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "elapsed-zero",
            "PT0S: no time at all.",
            _terms_bytes(_with(permission=[_permission("recall", ("elapsedTime", "PT0S"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "elapsed-leading-zero",
            "P030D.",
            _terms_bytes(_with(permission=[_permission("recall", ("elapsedTime", "P030D"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "elapsed-fraction",
            "PT1.5S.",
            _terms_bytes(_with(permission=[_permission("recall", ("elapsedTime", "PT1.5S"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "elapsed-too-long",
            "P36501D: over 36,500 days.",
            _terms_bytes(_with(permission=[_permission("recall", ("elapsedTime", "P36501D"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
        (
            "elapsed-lowercase",
            "p30d.",
            _terms_bytes(_with(permission=[_permission("recall", ("elapsedTime", "p30d"))])),
            "TERMS_CONSTRAINT_INVALID",
        ),
    ]
    return cases + [_terms(case, text, data, invalid(reason)) for case, text, data, reason in bad]


def grant_statement(*, terms: Any = None, predicate_type: str = GRANT_TYPE, **changes: Any) -> bytes:
    predicate: Json = {
        "license": BASE_TERMS["license"],
        "logOrigin": ORIGIN,
        "licensee": {"principal": LICENSEE, "keyId": KEY2.key_id},
        "terms": BASE_TERMS if terms is None else terms,
        "notBefore": rfc3339(NOW - DAY),
        "notAfter": rfc3339(NOW + 365 * DAY),
        "publishLogIndex": 4,
        **changes,
    }
    return canonical(
        {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": RELEASE, "digest": {"sha256": RELEASE_DIGEST}}],
            "predicateType": predicate_type,
            "predicate": predicate,
        }
    )


def _grant(
    case: str, description: str, grant: str, expected: Json, *, principal: str = LICENSEE, key_id: str = KEY2.key_id
) -> Json:
    inputs = {
        "now": rfc3339(NOW),
        "trusted_keys": [MARKETPLACE.trusted()],
        "licensee_principal": principal,
        "licensee_key_id": key_id,
        "grant": grant,
        "checks": CHECKS,
    }
    return vector("grant", case, description, inputs, expected)


def grant_vectors() -> list[Json]:
    payload = grant_statement()
    good = signed(STATEMENT_PAYLOAD_TYPE, payload, MARKETPLACE)
    at_most = grant_statement(publishLogIndex=2**53 - 1)
    flipped = bytearray(payload)
    flipped[payload.index(b"publishLogIndex") + len("publishLogIndex") + 2] ^= 0x01  # 4 -> 5
    cases = [
        _grant(
            "valid",
            "A grant of weather-facts 1.2.0 to principals/buyer (key 2), signed by the marketplace (key 3).",
            good,
            valid(statement_sha256=sha256_hex(payload), release=RELEASE, publish_log_index=4, decisions=DECISIONS),
        ),
        _grant(
            "other-licensee-principal",
            "The caller is another principal.",
            good,
            invalid("GRANT_OTHER_LICENSEE"),
            principal="principals/other",
        ),
        _grant(
            "other-licensee-key",
            "The caller's key is key 1, not the granted key 2.",
            good,
            invalid("GRANT_OTHER_LICENSEE"),
            key_id=KEY1.key_id,
        ),
        _grant(
            "expired",
            "notAfter is now: a grant is valid strictly before it.",
            signed(STATEMENT_PAYLOAD_TYPE, grant_statement(notAfter=rfc3339(NOW)), MARKETPLACE),
            invalid("GRANT_EXPIRED"),
        ),
        _grant(
            "not-yet-valid",
            "notBefore is a second after now.",
            signed(STATEMENT_PAYLOAD_TYPE, grant_statement(notBefore=rfc3339(NOW + DAY / 86400)), MARKETPLACE),
            invalid("GRANT_NOT_YET_VALID"),
        ),
        _grant(
            "bad-signature",
            "publishLogIndex changed from 4 to 5 after the marketplace signed.",
            envelope_json(
                STATEMENT_PAYLOAD_TYPE, bytes(flipped), [MARKETPLACE.signature(STATEMENT_PAYLOAD_TYPE, payload)]
            ),
            invalid("GRANT_SIGNATURE_INVALID"),
        ),
        _grant(
            "untrusted-signer",
            "Signed by key 1, which is not the marketplace key.",
            signed(STATEMENT_PAYLOAD_TYPE, payload, KEY1),
            invalid("GRANT_UNTRUSTED_SIGNER"),
        ),
        _grant(
            "unknown-terms-member",
            "The terms carry a member the grammar does not name.",
            signed(STATEMENT_PAYLOAD_TYPE, grant_statement(terms={**BASE_TERMS, "resale": True}), MARKETPLACE),
            invalid("GRANT_TERMS_UNKNOWN_MEMBER"),
        ),
        _grant(
            "terms-invalid",
            "The terms permit and prohibit export.",
            signed(
                STATEMENT_PAYLOAD_TYPE,
                grant_statement(terms={**BASE_TERMS, "permission": [_permission("export")]}),
                MARKETPLACE,
            ),
            invalid("GRANT_TERMS_INVALID"),
        ),
        _grant(
            "wrong-predicate-type",
            "The statement is a MemCube bundle's.",
            signed(
                STATEMENT_PAYLOAD_TYPE,
                grant_statement(predicate_type="https://memos-grpc.dev/MemCubeBundle/v1"),
                MARKETPLACE,
            ),
            invalid("GRANT_PREDICATE_TYPE_INVALID"),
        ),
        _grant(
            "predicate-unknown-member",
            "The predicate carries its own logIndex.",
            signed(STATEMENT_PAYLOAD_TYPE, grant_statement(logIndex=9), MARKETPLACE),
            invalid("GRANT_MALFORMED"),
        ),
        _grant(
            "license-mismatch",
            "predicate.license differs from the terms' license.",
            signed(STATEMENT_PAYLOAD_TYPE, grant_statement(license="MIT"), MARKETPLACE),
            invalid("GRANT_MALFORMED"),
        ),
        _grant(
            "window-inverted",
            "notAfter before notBefore.",
            signed(STATEMENT_PAYLOAD_TYPE, grant_statement(notAfter=rfc3339(NOW - 2 * DAY)), MARKETPLACE),
            invalid("GRANT_MALFORMED"),
        ),
        _grant(
            "wrong-payload-type",
            "The envelope's payloadType is not in-toto's.",
            signed("application/json", payload, MARKETPLACE),
            invalid("GRANT_MALFORMED"),
        ),
        _grant("not-an-envelope", "The grant is not JSON.", good[:-1], invalid("GRANT_MALFORMED")),
        # publishLogIndex is 0 to 2^53 - 1.
        _grant(
            "valid-publish-log-index-max",
            "publishLogIndex 2^53 - 1, the largest allowed.",
            signed(STATEMENT_PAYLOAD_TYPE, at_most, MARKETPLACE),
            valid(
                statement_sha256=sha256_hex(at_most),
                release=RELEASE,
                publish_log_index=2**53 - 1,
                decisions=DECISIONS,
            ),
        ),
        _grant(
            "publish-log-index-negative",
            "publishLogIndex -1.",
            signed(STATEMENT_PAYLOAD_TYPE, grant_statement(publishLogIndex=-1), MARKETPLACE),
            invalid("GRANT_MALFORMED"),
        ),
        _grant(
            "publish-log-index-past-safe-integer",
            "publishLogIndex 2^53: past the largest JSON-safe integer.",
            signed(STATEMENT_PAYLOAD_TYPE, grant_statement(publishLogIndex=2**53), MARKETPLACE),
            invalid("GRANT_MALFORMED"),
        ),
    ]
    return entry_vectors() + terms_vectors() + cases
