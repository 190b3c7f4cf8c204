"""make_grant signs what verify_grant accepts, and refuses to sign what no buyer could read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memos_grpc.marketplace.entries import Entry, EntryError
from memos_grpc.marketplace.grants import make_grant, verify_grant
from memos_grpc.marketplace.terms import Terms
from memos_grpc.primitives.keys import SigningKey, TrustedKey

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TERMS = Terms.parse(
    b'{"license":"MIT","permission":[{"action":"recall","constraint":'
    b'[{"leftOperand":"count","operator":"lteq","rightOperand":2}]}],"maxOfflineSeconds":3600}'
)


def fields(**changes: object) -> dict[str, object]:
    return {
        "release": "listings/facts/releases/1.0.0-rc.1",
        "release_digest": "sha256:" + "ab" * 32,
        "terms": TERMS,
        "log_origin": "market.example/log",
        "licensee_principal": "principals/buyer",
        "licensee_key_id": "cd" * 32,
        "not_before": NOW - timedelta(hours=1),
        "not_after": NOW + timedelta(days=1),
        "publish_log_index": 0,
        **changes,
    }


def test_a_made_grant_verifies_for_its_licensee_with_its_terms() -> None:
    market = SigningKey.from_seed(bytes(32))
    envelope = make_grant(key=market, **fields())  # type: ignore[arg-type]
    trusted = {market.key_id: TrustedKey(market.key_id, market.public_key)}
    result = verify_grant(envelope.to_json(), trusted, "principals/buyer", "cd" * 32, NOW)
    assert result, result.message
    assert result.grant is not None and result.grant.signer == market.key_id
    assert result.grant.terms.document == TERMS.document
    assert result.grant.terms.permits("recall", 1, result.grant.not_before, NOW).remaining == 0
    assert not verify_grant(envelope.to_json(), {}, "principals/buyer", "cd" * 32, NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"release": "listings/facts/releases/1.0"},
        {"release": "listings/facts/releases/1.0.0+build"},
        {"licensee_principal": "buyer"},
        {"licensee_key_id": "CD" * 32},
        {"log_origin": "has space"},
        {"not_after": NOW - timedelta(hours=2)},
        {"publish_log_index": -1},
    ],
)
def test_make_grant_refuses_what_the_grammar_does_not_allow(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_grant(key=SigningKey.from_seed(bytes(32)), **fields(**changes))  # type: ignore[arg-type]


def test_an_entry_cannot_be_built_that_parse_would_refuse() -> None:
    digest = "sha256:" + "00" * 32
    with pytest.raises(EntryError) as missing:
        Entry("yank", digest, digest, "11" * 32)
    assert missing.value.reason == "ENTRY_REF_MISSING"
    with pytest.raises(EntryError) as unexpected:
        Entry("publish", digest, digest, "11" * 32, ref=0)
    assert unexpected.value.reason == "ENTRY_REF_UNEXPECTED"
    with pytest.raises(EntryError) as ref:
        Entry("revoke", digest, digest, "11" * 32, ref=True)
    assert ref.value.reason == "ENTRY_REF_INVALID"
