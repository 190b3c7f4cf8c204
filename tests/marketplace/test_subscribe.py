"""Subscribe over gRPC: publish, yank and revoke events in log order, followed live, replayed, filtered.

A real marketplace server with the real MiniLM embedder (its query criterion), and one without an embedder.
A stream never ends by itself, so each test reads exactly the events it expects; that nothing came in between
shows in the log indexes (events come in log order). A live subscriber waits for the stream's initial
metadata, which the server sends once it knows where the stream starts, before anything is published.
The last test takes the real publish and yank paths: a release bundle a publisher node exported.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from _market import Market, open_market
from memos_test_support import reason_of, start_server
from test_releases import World, export, publish
from test_releases import world as world  # the two-server fixture (publisher and marketplace nodes)

from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc.embedding.embedder import Embedder, NoEmbedder
from memos_grpc.marketplace import entries
from memos_grpc.server.market_licenses import START_INDEX_METADATA

PUBLISH, YANK, REVOKE = m.EVENT_TYPE_PUBLISH, m.EVENT_TYPE_YANK, m.EVENT_TYPE_REVOKE
KEY = "ab" * 32


@pytest.fixture
def market(tmp_path: Path, embedder: Embedder) -> Iterator[Market]:
    server = start_server(tmp_path / "data", embedder, marketplace_enabled=True)
    opened = open_market(server)
    yield opened
    opened.close()
    server.stop(grace=1)


def subscribe(market: Market, **criteria: object) -> Iterator[m.MarketplaceEvent]:
    call = market.stranger.Subscribe(m.SubscribeRequest(**criteria), timeout=60)  # type: ignore[arg-type]
    return call  # type: ignore[no-any-return]


def take(stream: Iterator[m.MarketplaceEvent], count: int) -> list[m.MarketplaceEvent]:
    events = [next(stream) for _ in range(count)]
    stream.cancel()  # type: ignore[attr-defined]
    return events


def revoke(market: Market, release: str) -> tuple[m.License, m.License]:
    granted = market.buyer.AcquireLicense(
        m.AcquireLicenseRequest(license=m.License(release=release, licensee="principals/buyer", licensee_key=KEY))
    )
    return granted, market.owner.RevokeLicense(m.RevokeLicenseRequest(name=granted.name, reason="refunded"))


def test_a_live_subscriber_gets_publishes_yanks_and_revokes_in_log_order(market: Market) -> None:
    market.release("before")  # logged before the call: not an event of a subscriber without start_index
    stream = subscribe(market)
    start = int(dict(stream.initial_metadata())[START_INDEX_METADATA])  # type: ignore[attr-defined]
    assert start == market.node.log.size()
    alpha = market.release("alpha", tags=("weather",))
    granted, revoked = revoke(market, alpha)  # the grant is no event
    yank_index = market.yank(alpha, "wrong units")
    events = take(stream, 3)
    assert [e.type for e in events] == [PUBLISH, REVOKE, YANK]
    publish, revoke_event, yank = events
    assert publish.log_index == start and publish.release.name == alpha
    assert entries.parse(publish.entry).type == "publish"
    assert publish.entry == market.node.log.entries(start, start + 1)[0] and publish.tree_size > start
    assert (revoke_event.log_index, revoke_event.ref_index) == (revoked.revocation.log_index, granted.log_index)
    assert revoke_event.license == granted.name and revoke_event.revocation == revoked.revocation
    assert (yank.log_index, yank.ref_index) == (yank_index, publish.log_index)
    # The release as it is now: the yank shows in every event of it, sent after the yank was logged or not.
    assert yank.release.yank.reason == "wrong units"


def test_a_subscriber_resumes_from_an_index_and_replays(market: Market) -> None:
    names = [market.release(f"r{n}") for n in range(3)]
    market.yank(names[0], "superseded")
    events = take(subscribe(market, start_index=0), 4)
    assert [e.release.name for e in events] == [*names, names[0]]
    assert [e.type for e in events] == [PUBLISH, PUBLISH, PUBLISH, YANK]
    assert [e.log_index for e in events] == sorted(e.log_index for e in events)
    # A replayed publish shows the release as it is now: yanked.
    assert events[0].release.state == m.Release.STATE_YANKED
    resumed = take(subscribe(market, start_index=events[1].log_index + 1), 2)
    assert [e.log_index for e in resumed] == [e.log_index for e in events[2:]]


def test_criteria_that_are_set_must_all_match(market: Market) -> None:
    alpha = market.release("alpha", tags=("weather", "eu"))
    beta = market.release("beta", tags=("cooking",))
    revoke(market, beta)
    beta_two = market.release("beta", "2.0.0", tags=("cooking",))
    revoke(market, alpha)
    market.release("alpha", "2.0.0")

    by_listing = take(subscribe(market, start_index=0, listings=["listings/alpha"]), 3)
    assert [(e.type, e.release.name) for e in by_listing] == [
        (PUBLISH, alpha),
        (REVOKE, alpha),
        (PUBLISH, "listings/alpha/releases/2.0.0"),
    ]
    by_tag = take(subscribe(market, start_index=0, tags=["cooking", "none"]), 3)
    assert [(e.type, e.release.name) for e in by_tag] == [(PUBLISH, beta), (REVOKE, beta), (PUBLISH, beta_two)]
    by_type = take(subscribe(market, start_index=0, types=[REVOKE]), 2)
    assert [e.release.name for e in by_type] == [beta, alpha]
    both = take(subscribe(market, start_index=0, types=[REVOKE], tags=["weather"]), 1)
    assert [e.release.name for e in both] == [alpha]


def test_a_query_matches_listings_by_meaning(market: Market) -> None:
    market.release("cooking-recipes")
    weather = market.release("weather-forecasts")
    events = take(subscribe(market, start_index=0, query="rain and storm forecasts", min_score=0.3), 1)
    assert events[0].release.name == weather and events[0].score >= 0.3


def test_bad_subscriptions_are_refused_with_their_reason(market: Market, tmp_path: Path) -> None:
    cases = {
        "min_score without query": ({"min_score": 0.5}, "INVALID_SUBSCRIPTION"),
        "min_score above 1": ({"query": "x", "min_score": 1.5}, "INVALID_SUBSCRIPTION"),
        "too many tags": ({"tags": [f"t{n}" for n in range(65)]}, "INVALID_SUBSCRIPTION"),
        "negative start": ({"start_index": -1}, "INVALID_SUBSCRIPTION"),
        "a release, not a listing": ({"listings": ["listings/a/releases/1.0.0"]}, "INVALID_NAME"),
        "an unknown type": ({"types": [9]}, "INVALID_ENUM"),
    }
    for case, (criteria, reason) in cases.items():
        with pytest.raises(grpc.RpcError) as refused:
            next(subscribe(market, **criteria))
        assert reason_of(refused.value) == reason, case
    server = start_server(tmp_path / "none", NoEmbedder(384), marketplace_enabled=True)
    plain = open_market(server)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            next(subscribe(plain, query="weather"))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason_of(refused.value) == "SUBSCRIPTION_QUERY_UNSUPPORTED"
    finally:
        plain.close()
        server.stop(grace=1)


def test_a_published_release_is_licensed_yanked_and_revoked_as_a_subscriber_sees_it(world: World) -> None:
    """The real publish and yank paths (a release bundle exported by a publisher node), end to end."""
    stream = world.stranger.Subscribe(m.SubscribeRequest(listings=["listings/wine"]), timeout=60)
    start = int(dict(stream.initial_metadata())[START_INDEX_METADATA])
    published = publish(world.owner, export(world.export_pub, world.space, "1.0.0"), "1.0.0").release
    request = m.License(release=published.name, licensee="principals/buyer", licensee_key=KEY)
    granted = world.stranger.AcquireLicense(m.AcquireLicenseRequest(license=request))
    yanked = world.owner.YankRelease(m.YankReleaseRequest(name=published.name, reason="corked"))
    revoked = world.owner.RevokeLicense(m.RevokeLicenseRequest(name=granted.name, reason="refunded"))
    events = take(stream, 3)
    assert [(e.type, e.log_index) for e in events] == [
        (PUBLISH, published.log_index),
        (YANK, yanked.yank.log_index),
        (REVOKE, revoked.revocation.log_index),
    ]
    assert start == published.log_index and events[1].ref_index == published.log_index
    assert events[2].ref_index == granted.log_index and events[2].license == granted.name
    # Every event shows the release as it is now, and the license its release's yank.
    assert all(e.release.yank.reason == "corked" for e in events[1:])
    got = world.stranger.GetLicense(m.GetLicenseRequest(name=granted.name))
    assert got.release_yank.reason == "corked" and got.state == m.License.STATE_REVOKED
    # The grant names the published statement, and its terms are the release's.
    assert entries.parse(world.node.log.entries(granted.log_index, granted.log_index + 1)[0]).subject == (
        published.statement_digest
    )
    assert granted.terms.json == published.terms.json
