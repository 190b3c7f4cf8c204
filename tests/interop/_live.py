"""The live interop topology: two real TLS servers that the Go and TypeScript clients' own test suites drive.

- ``market``: a marketplace node (TLS), with the log origin ``live.test/log``.
- ``main``: a node with mTLS (a client certificate from the test CA, plus a bearer token) that trusts the
  market (its marketplace key and log policy are in main's trust root), follows its log (syncs when asked),
  and witnesses it (``witness_logs`` names the market's log key).

Each server writes an access log; the runner reads the methods each client called from it, by user agent. The
clients learn the topology from one JSON file, named by the environment variable ``MEMOS_LIVE``::

    {"ca_file": ..., "client_cert_file": ..., "client_key_file": ...,
     "main": {"address": "127.0.0.1:P", "admin_token": ..., "witness_vkey": ...},
     "market": {"address": "127.0.0.1:Q", "admin_token": ..., "log_origin": "live.test/log", "log_vkey": ...}}

Run ``python -m tests.interop._live FILE`` to start the topology, write FILE, and serve until interrupted (to
work on a client's live tests by hand).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import grpc
from memos_client import MemosClient

from memos_grpc.embedding.embedder import Embedder
from memos_grpc.interchange import trust
from memos_grpc.interchange.dsse import Envelope, parse_envelope
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.server.app import MemosServer
from memos_grpc.settings import Settings
from memos_grpc.transparency.cosignature import CosignatureVerifier
from memos_grpc.transparency.note import NoteVerifier
from tests.server._certs import Pki, make_pki

LOG_ORIGIN = "live.test/log"


@dataclass
class Live:
    """The running topology and the file that describes it to the clients."""

    pki: Pki
    market: MemosServer
    main: MemosServer
    #: The JSON file of the module docstring.
    file: Path
    #: The access logs, one per server.
    access_logs: tuple[Path, ...]


def _start(data_dir: Path, embedder: Embedder, **overrides: object) -> MemosServer:
    settings = Settings.from_mapping({"data_dir": data_dir, "listen": "127.0.0.1:0", "workers": 8, **overrides})
    server = MemosServer(settings, embedder)
    server.start()
    return server


def _admin_token(server: MemosServer) -> str:
    return (Path(server.settings.data_dir) / "admin.token").read_text().strip()


def _client(server: MemosServer, pki: Pki, token: str, *, mtls: bool = False) -> MemosClient:
    credentials = grpc.ssl_channel_credentials(
        pki.ca.cert_pem(),
        pki.client.key_pem() if mtls else None,
        pki.client.cert_pem() if mtls else None,
    )
    return MemosClient(server.address, token=token, credentials=credentials, timeout=60.0)


def _trust_the_market(main: MemosClient, market: MemosClient) -> None:
    """What ``memos-grpc trust add-marketplace`` does: main's next trust root names the market's keys and logs."""
    from memos_grpc.cli.trust import Marketplace, with_marketplace

    theirs = trust.parse_trust_root(parse_envelope(market.get_trust_root().signed_envelope).payload)
    origins = tuple(log.name for policy in theirs.log_policies for log in policy.logs)
    offer = Marketplace(theirs.keys_for("marketplace"), theirs.marketplace_logs, origins)
    ours = trust.parse_trust_root(parse_envelope(main.get_trust_root().signed_envelope).payload)
    proposed = with_marketplace(ours, offer)
    assert proposed is not None, "a fresh node already trusts the market"
    envelope = Envelope(trust.TRUST_ROOT_PAYLOAD_TYPE, proposed.payload())
    main.update_trust_root(envelope.to_json(), add_node_signature=True)


def _witness_vkey(server: MemosServer) -> str:
    """The vkey of the node's witness key, as it logs at start: what a client checks its cosignatures with."""
    key = SigningKey.read(Path(server.settings.data_dir) / "keys" / "witness.key")
    return CosignatureVerifier.for_key(server.settings.witness_name, key.public_key).vkey()


@contextmanager
def live_topology(tmp: Path, embedder: Embedder) -> Iterator[Live]:
    pki = make_pki(tmp / "pki")
    tls = {"tls_cert_file": str(pki.server.cert), "tls_key_file": str(pki.server.key)}
    log_key = SigningKey.generate()
    log_key.write(tmp / "market" / "keys" / "log.key")
    log_vkey = NoteVerifier.for_key(LOG_ORIGIN, log_key.public_key).vkey()
    access_logs = (tmp / "market-access.jsonl", tmp / "main-access.jsonl")
    servers: list[MemosServer] = []
    try:
        market = _start(
            tmp / "market",
            embedder,
            marketplace_enabled=True,
            marketplace_log_origin=LOG_ORIGIN,
            access_log_file=str(access_logs[0]),
            **tls,
        )
        servers.append(market)
        with _client(market, pki, _admin_token(market)) as admin:
            follower = admin.create_principal("main-node").name
            follow_token = tmp / "follow.token"
            follow_token.write_text(admin.create_credential(follower).token)
            follow_token.chmod(0o600)
        main = _start(
            tmp / "main",
            embedder,
            tls_client_ca_file=str(pki.ca.cert),
            peer_ca_file=str(pki.ca.cert),
            marketplace_follow=market.address,
            marketplace_follow_token_file=str(follow_token),
            marketplace_sync_seconds=3600,  # syncs happen when a client asks (SyncMarketplaceLog)
            witness_logs=log_vkey,
            access_log_file=str(access_logs[1]),
            **tls,
        )
        servers.append(main)
        with (
            _client(main, pki, _admin_token(main), mtls=True) as main_admin,
            _client(market, pki, _admin_token(market)) as market_admin,
        ):
            _trust_the_market(main_admin, market_admin)
        file = tmp / "live.json"
        description = {
            "ca_file": str(pki.ca.cert),
            "client_cert_file": str(pki.client.cert),
            "client_key_file": str(pki.client.key),
            "main": {
                "address": main.address,
                "admin_token": _admin_token(main),
                "witness_vkey": _witness_vkey(main),
            },
            "market": {
                "address": market.address,
                "admin_token": _admin_token(market),
                "log_origin": LOG_ORIGIN,
                "log_vkey": log_vkey,
            },
        }
        file.write_text(json.dumps(description, indent=2))
        file.chmod(0o600)
        yield Live(pki, market, main, file, access_logs)
    finally:
        for server in reversed(servers):
            server.stop(grace=1)


def called_methods(access_logs: tuple[Path, ...], user_agent_prefix: str) -> set[str]:
    """The full method names (``/memos.v1.VaultService/GetCube``) that callers whose user agent starts with
    ``user_agent_prefix`` called on any of the servers, whatever the outcome."""
    called: set[str] = set()
    for path in access_logs:
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if str(record["user_agent"]).startswith(user_agent_prefix):
                called.add(str(record["method"]))
    return called


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.interop._live FILE", file=sys.stderr)
        return 2
    import tempfile

    from memos_grpc.embedding.embedder import MiniLMEmbedder

    with tempfile.TemporaryDirectory(prefix="memos-live-") as tmp, live_topology(Path(tmp), MiniLMEmbedder()) as live:
        Path(argv[0]).write_text(live.file.read_text())
        print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} serving: {argv[0]} (access logs in {tmp}); Ctrl-C stops")
        sys.stdout.flush()
        with suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
