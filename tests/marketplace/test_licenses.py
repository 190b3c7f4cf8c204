"""Licenses over gRPC: acquire, get, list, revoke, on a real marketplace server (and one with a witness).

What AcquireLicense returns is checked the way a buyer checks it offline: the grant with ``verify_grant`` and
the marketplace key, the proof with ``verify_proof`` under the node's tlog-policy. Who sees and who revokes a
license, and bad input refused with its reason and nothing logged or stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from _market import OPEN_TERMS, Market, license_count, open_market
from google.protobuf import timestamp_pb2
from memos_test_support import reason_of, start_server

from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.marketplace import entries
from memos_grpc.marketplace.grants import verify_grant
from memos_grpc.marketplace.licenses import NO_END
from memos_grpc.primitives.keys import SigningKey, TrustedKey
from memos_grpc.server.app import MemosServer
from memos_grpc.transparency.cosignature import CosignatureVerifier
from memos_grpc.transparency.note import NoteVerifier
from memos_grpc.transparency.policy import parse_policy
from memos_grpc.transparency.proof import verify_proof

BUYER_KEY = SigningKey.generate().key_id


@pytest.fixture
def market(tmp_path: Path, embedder: Embedder) -> Iterator[Market]:
    server = start_server(tmp_path / "data", embedder, marketplace_enabled=True, marketplace_log_origin="lic.test/log")
    opened = open_market(server)
    yield opened
    opened.close()
    server.stop(grace=1)


def wanted(release: str, licensee: str = "principals/buyer", key: str = BUYER_KEY, **times: datetime) -> m.License:
    license = m.License(release=release, licensee=licensee, licensee_key=key)
    for field, when in times.items():
        getattr(license, field).FromDatetime(when)
    return license


def acquire(market: Market, license: m.License) -> m.License:
    reply: m.License = market.buyer.AcquireLicense(m.AcquireLicenseRequest(license=license))
    return reply


def check_offline(market: Market, license: m.License, now: datetime) -> None:
    """The grant verifies for its licensee, the proof under the node's policy, and the entry is the grant's."""
    node = market.node
    trusted = {node.marketplace_key.key_id: TrustedKey(node.marketplace_key.key_id, node.marketplace_key.public_key)}
    checked = verify_grant(license.grant_envelope, trusted, license.licensee, license.licensee_key, now)
    assert checked, checked.message
    assert checked.grant is not None and checked.grant.statement_digest == license.grant_digest
    entry = node.log.entries(license.log_index, license.log_index + 1)[0]
    parsed = entries.parse(entry)
    assert (parsed.type, parsed.statement, parsed.signer) == (
        "grant",
        license.grant_digest,
        node.marketplace_key.key_id,
    )
    policy = parse_policy(node.policy_text())
    report = verify_proof(entry, license.tlog_proof, node.log_verifier, policy, policy.witnesses, now, 600)
    assert report, report.shortfalls


def test_an_acquired_license_verifies_offline_for_its_licensee_only(market: Market) -> None:
    release = market.release("weather")
    now = datetime.now(UTC)
    license = acquire(market, wanted(release))
    assert license.name.startswith("licenses/") and license.state == m.License.STATE_ACTIVE
    assert (license.release, license.acquirer) == (release, market.names["buyer"])
    # The window: from now to the terms' end, recall's elapsedTime of 30 days.
    start = license.not_before.ToDatetime(tzinfo=UTC)
    assert abs((start - now).total_seconds()) < 60
    assert license.not_after.ToDatetime(tzinfo=UTC) - start == timedelta(days=30)
    check_offline(market, license, now + timedelta(seconds=5))
    node = market.node
    trusted = {node.marketplace_key.key_id: TrustedKey(node.marketplace_key.key_id, node.marketplace_key.public_key)}
    other = verify_grant(license.grant_envelope, trusted, "principals/someone-else", BUYER_KEY, now)
    assert not other and other.reason == "GRANT_OTHER_LICENSEE"
    other_key = verify_grant(license.grant_envelope, trusted, "principals/buyer", "ab" * 32, now)
    assert not other_key and other_key.reason == "GRANT_OTHER_LICENSEE"
    # Read again: the same license, with the same proof.
    assert market.buyer.GetLicense(m.GetLicenseRequest(name=license.name)) == license


def test_the_window_narrows_and_terms_without_an_end_run_to_the_last_time(market: Market) -> None:
    release = market.release("open", terms=OPEN_TERMS)
    assert acquire(market, wanted(release)).not_after.ToDatetime(tzinfo=UTC) == NO_END
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    narrowed = acquire(market, wanted(market.release("weather"), not_before=start, not_after=start + timedelta(days=2)))
    assert narrowed.not_before.ToDatetime(tzinfo=UTC) == start
    assert narrowed.not_after.ToDatetime(tzinfo=UTC) == start + timedelta(days=2)
    # Not yet valid for the buyer today; valid tomorrow.
    check_offline(market, narrowed, start + timedelta(hours=1))


def test_a_yanked_release_is_acquirable_by_its_exact_name_with_its_yank(market: Market) -> None:
    release = market.release("weather")
    before = acquire(market, wanted(release))
    yank_index = market.yank(release, "wrong units")
    after = acquire(market, wanted(release))
    check_offline(market, after, datetime.now(UTC) + timedelta(seconds=5))
    for license in (after, market.buyer.GetLicense(m.GetLicenseRequest(name=before.name))):
        assert (license.release_yank.reason, license.release_yank.log_index) == ("wrong units", yank_index)
        assert license.state == m.License.STATE_ACTIVE  # a yank leaves the grant valid


def test_who_sees_lists_and_revokes_a_license(market: Market) -> None:
    release = market.release("weather")
    first, second = acquire(market, wanted(release)), acquire(market, wanted(release))
    for stub in (market.buyer, market.owner, market.admin):
        assert stub.GetLicense(m.GetLicenseRequest(name=first.name)).name == first.name
    with pytest.raises(grpc.RpcError) as hidden:
        market.stranger.GetLicense(m.GetLicenseRequest(name=first.name))
    assert (hidden.value.code(), reason_of(hidden.value)) == (grpc.StatusCode.NOT_FOUND, "LICENSE_NOT_FOUND")
    assert list(market.stranger.ListLicenses(m.ListLicensesRequest()).licenses) == []
    # Two pages of one for the owner, in name order.
    page = market.owner.ListLicenses(m.ListLicensesRequest(page_size=1))
    rest = market.owner.ListLicenses(m.ListLicensesRequest(page_size=1, page_token=page.next_page_token))
    assert [x.name for x in [*page.licenses, *rest.licenses]] == sorted([first.name, second.name])
    assert rest.next_page_token == ""

    size = market.node.log.size()
    for stub, code, reason in (
        (market.stranger, grpc.StatusCode.NOT_FOUND, "LICENSE_NOT_FOUND"),
        (market.buyer, grpc.StatusCode.PERMISSION_DENIED, "LISTING_OWNER_REQUIRED"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.RevokeLicense(m.RevokeLicenseRequest(name=first.name, reason="no"))
        assert (refused.value.code(), reason_of(refused.value)) == (code, reason)
    assert market.node.log.size() == size

    revoked = market.owner.RevokeLicense(m.RevokeLicenseRequest(name=first.name, reason="payment reversed"))
    assert revoked.state == m.License.STATE_REVOKED and revoked.revocation.reason == "payment reversed"
    entry = entries.parse(market.node.log.entries(revoked.revocation.log_index, revoked.revocation.log_index + 1)[0])
    assert (entry.type, entry.ref, entry.signer) == ("revoke", first.log_index, market.node.marketplace_key.key_id)
    assert market.buyer.GetLicense(m.GetLicenseRequest(name=first.name)).revocation == revoked.revocation
    listed = market.buyer.ListLicenses(m.ListLicensesRequest(filter="state = REVOKED")).licenses
    assert [x.name for x in listed] == [first.name] and listed[0].revocation == revoked.revocation
    size = market.node.log.size()
    with pytest.raises(grpc.RpcError) as twice:
        market.admin.RevokeLicense(m.RevokeLicenseRequest(name=first.name, reason="again"))
    assert (twice.value.code(), reason_of(twice.value)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "LICENSE_ALREADY_REVOKED",
    )
    assert market.node.log.size() == size


def test_bad_requests_are_refused_with_their_reason_and_change_nothing(market: Market) -> None:
    release = market.release("weather")
    now = datetime.now(UTC).replace(microsecond=0)
    fraction = wanted(release)
    fraction.not_before.CopyFrom(timestamp_pb2.Timestamp(seconds=int(now.timestamp()) + 60, nanos=5))
    acquires = {
        "no release": (wanted(""), "INVALID_NAME"),
        "a listing, not a release": (wanted("listings/weather"), "INVALID_NAME"),
        "no such release": (wanted("listings/weather/releases/9.9.9"), "RELEASE_NOT_FOUND"),
        "bad licensee": (wanted(release, licensee="buyer"), "INVALID_NAME"),
        "upper-case key": (wanted(release, key="AB" * 32), "INVALID_KEY_ID"),
        "short key": (wanted(release, key="ab" * 31), "INVALID_KEY_ID"),
        "a fraction of a second": (fraction, "INVALID_TIMESTAMP"),
        "past the terms' end": (wanted(release, not_after=now + timedelta(days=31)), "INVALID_GRANT_WINDOW"),
        "an end before the start": (
            wanted(release, not_before=now + timedelta(days=2), not_after=now + timedelta(days=1)),
            "INVALID_GRANT_WINDOW",
        ),
        "backdated": (wanted(release, not_before=now - timedelta(days=1)), "INVALID_GRANT_WINDOW"),
    }
    size, count = market.node.log.size(), license_count(market)
    for case, (license, reason) in acquires.items():
        with pytest.raises(grpc.RpcError) as refused:
            acquire(market, license)
        assert reason_of(refused.value) == reason, case
    granted = acquire(market, wanted(release))
    size, count = market.node.log.size(), license_count(market)
    calls = {
        "revoke without a reason": (
            lambda: market.owner.RevokeLicense(m.RevokeLicenseRequest(name=granted.name, reason=" ")),
            "MISSING_REASON",
        ),
        "revoke a bad name": (
            lambda: market.owner.RevokeLicense(m.RevokeLicenseRequest(name="licenses/X", reason="r")),
            "INVALID_NAME",
        ),
        "get a bad name": (lambda: market.owner.GetLicense(m.GetLicenseRequest(name="license/x")), "INVALID_NAME"),
        "list a bad filter": (
            lambda: market.owner.ListLicenses(m.ListLicensesRequest(filter="price = 3")),
            "INVALID_FILTER",
        ),
        "list a foreign token": (
            lambda: market.owner.ListLicenses(m.ListLicensesRequest(page_token="bm9wZQ")),
            "INVALID_PAGE_TOKEN",
        ),
    }
    for case, (call, reason) in calls.items():
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert reason_of(refused.value) == reason, case
    assert (market.node.log.size(), license_count(market)) == (size, count)
    assert market.buyer.GetLicense(m.GetLicenseRequest(name=granted.name)).state == m.License.STATE_ACTIVE


def test_a_node_that_is_no_marketplace_refuses_licenses(fresh_server: MemosServer) -> None:
    market = open_market(fresh_server)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            market.buyer.AcquireLicense(m.AcquireLicenseRequest(license=wanted("listings/a/releases/1.0.0")))
        assert reason_of(refused.value) == "MARKETPLACE_DISABLED"
    finally:
        market.close()


def _metadata(error: grpc.RpcError) -> dict[str, str]:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return dict(info.metadata)
    return {}


def test_a_witnessed_license_proof_needs_the_witness_cosignature(tmp_path: Path, embedder: Embedder) -> None:
    """With a witness: the proof carries its cosignature. Without it: the grant is logged, the call says so, and
    the license gets its proof once the witness is back and cosigns."""
    log_key, witness_key = SigningKey.generate(), SigningKey.generate()
    log_key.write(tmp_path / "market" / "keys" / "log.key")
    witness_key.write(tmp_path / "witness" / "keys" / "witness.key")
    origin = "lic.test/witnessed"
    probe = start_server(tmp_path / "probe", embedder)
    port = int(probe.address.rsplit(":", 1)[1])  # the witness keeps this port across its restart
    probe.stop(grace=1)

    def start_witness() -> MemosServer:
        return start_server(
            tmp_path / "witness",
            embedder,
            listen=f"127.0.0.1:{port}",
            witness_logs=NoteVerifier.for_key(origin, log_key.public_key).vkey(),
            witness_name="w.test",
        )

    witness = start_witness()
    vkey = CosignatureVerifier.for_key("w.test", witness_key.public_key).vkey()
    server = start_server(
        tmp_path / "market",
        embedder,
        marketplace_enabled=True,
        marketplace_log_origin=origin,
        marketplace_witnesses=f"{vkey}@127.0.0.1:{port}",
        marketplace_witness_timeout_seconds=5,
        checkpoint_wait_seconds=2,
        allow_plaintext_peers=True,
    )
    market = open_market(server)
    try:
        now = datetime.now(UTC)
        release = market.release("weather")
        license = acquire(market, wanted(release))
        assert "\u2014 w.test " in license.tlog_proof
        check_offline(market, license, now + timedelta(seconds=5))
        entry = market.node.log.entries(license.log_index, license.log_index + 1)[0]
        policy = parse_policy(market.node.policy_text())
        bare = license.tlog_proof.split("\u2014 w.test ")[0]
        assert not verify_proof(entry, bare, market.node.log_verifier, policy, policy.witnesses, now, 600)

        witness.stop(grace=1)
        with pytest.raises(grpc.RpcError) as waited:
            acquire(market, wanted(release))
        assert (waited.value.code(), reason_of(waited.value)) == (
            grpc.StatusCode.UNAVAILABLE,
            "WITNESS_QUORUM_UNAVAILABLE",
        )
        logged = _metadata(waited.value)
        pending = market.buyer.GetLicense(m.GetLicenseRequest(name=logged["license"]))
        assert pending.log_index == int(logged["log_index"]) and pending.tlog_proof == ""
        witness = start_witness()
        market.node.wait_published(pending.log_index + 1, timeout=60)
        proved = market.buyer.GetLicense(m.GetLicenseRequest(name=logged["license"]))
        check_offline(market, proved, datetime.now(UTC) + timedelta(seconds=5))
    finally:
        market.close()
        server.stop(grace=1)
        witness.stop(grace=1)
