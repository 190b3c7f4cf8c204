"""TLS, mTLS and the bootstrap admin token, against real servers on 127.0.0.1 with a real test PKI.

Each test would fail without its feature: a plaintext server would answer the
insecure channel, a server ignoring client certificates would not know the
registered principal, a server rewriting admin.token would change it, and
bad TLS settings must fail at startup as INVALID_CONFIG naming what is wrong.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from _certs import Issued, Pki, make_pki
from memos_test_support import admin_token, authorized_channel, reason_of, start_server

from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import principal_pb2, space_pb2
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.server.app import MemosServer
from memos_grpc.settings import Settings

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(tmp_path: Path, embedder: Embedder, pki: Pki) -> Iterator[MemosServer]:
    running = start_server(
        tmp_path / "data", embedder, tls_cert_file=str(pki.server.cert), tls_key_file=str(pki.server.key)
    )
    yield running
    running.stop(grace=1)


@pytest.fixture
def mtls_server(tmp_path: Path, embedder: Embedder, pki: Pki) -> Iterator[MemosServer]:
    running = start_server(
        tmp_path / "data",
        embedder,
        tls_cert_file=str(pki.server.cert),
        tls_key_file=str(pki.server.key),
        tls_client_ca_file=str(pki.ca.cert),
    )
    yield running
    running.stop(grace=1)


class Connect:
    """Opens governance stubs over TLS, and closes their channels when the test ends."""

    def __init__(self) -> None:
        self.channels: list[grpc.Channel] = []

    def __call__(
        self, server: MemosServer, trust: Issued, client: Issued | None = None, token: str = ""
    ) -> GovernanceServiceStub:
        """A stub trusting the CA ``trust``, presenting ``client``'s certificate and a bearer token when given."""
        credentials = grpc.ssl_channel_credentials(
            root_certificates=trust.cert_pem(),
            private_key=client.key_pem() if client else None,
            certificate_chain=client.cert_pem() if client else None,
        )
        if token:  # sent as `authorization: Bearer <token>` metadata on every call
            credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
        self.channels.append(grpc.secure_channel(server.address, credentials))
        return GovernanceServiceStub(self.channels[-1])


@pytest.fixture
def connect() -> Iterator[Connect]:
    opener = Connect()
    yield opener
    for channel in opener.channels:
        channel.close()


def new_space(governance: GovernanceServiceStub) -> space_pb2.Space:
    space_id = "s" + uuid.uuid4().hex[:12]
    return governance.CreateSpace(g.CreateSpaceRequest(space_id=space_id), timeout=TIMEOUT)


def failed_code(call: Callable[[], object]) -> grpc.StatusCode:
    """Makes the call and returns the status code it fails with."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


# -- TLS ---------------------------------------------------------------------


def test_tls_server_serves_clients_that_trust_its_ca_and_only_over_tls(
    tls_server: MemosServer, pki: Pki, connect: Connect
) -> None:
    governance = connect(tls_server, pki.ca, token=admin_token(tls_server))
    created = new_space(governance)
    fetched = governance.GetSpace(g.GetSpaceRequest(name=created.name), timeout=TIMEOUT)
    assert fetched.name == created.name
    assert fetched.owner == "principals/admin"

    # Plaintext to the same port: the server speaks TLS only, so there is no HTTP/2 peer to talk to.
    with authorized_channel(tls_server.address, admin_token(tls_server)) as plaintext:
        code = failed_code(
            lambda: GovernanceServiceStub(plaintext).GetSpace(g.GetSpaceRequest(name=created.name), timeout=TIMEOUT)
        )
    assert code == grpc.StatusCode.UNAVAILABLE

    # A client that trusts another CA refuses the server's certificate.
    untrusting = connect(tls_server, pki.rogue_ca, token=admin_token(tls_server))
    code = failed_code(lambda: untrusting.GetSpace(g.GetSpaceRequest(name=created.name), timeout=TIMEOUT))
    assert code == grpc.StatusCode.UNAVAILABLE


# -- mTLS --------------------------------------------------------------------


def register(connect: Connect, server: MemosServer, pki: Pki, fingerprint: str) -> str:
    """Creates a non-admin principal for a certificate fingerprint; returns its name."""
    admin = connect(server, pki.ca, pki.client, token=admin_token(server))
    principal_id = "p" + uuid.uuid4().hex[:12]
    principal = principal_pb2.Principal(
        kind=principal_pb2.Principal.KIND_SERVICE, certificate_fingerprints=[fingerprint]
    )
    created = admin.CreatePrincipal(
        g.CreatePrincipalRequest(principal_id=principal_id, principal=principal), timeout=TIMEOUT
    )
    assert not created.admin
    assert list(created.certificate_fingerprints) == [fingerprint]
    return str(created.name)


def test_mtls_registered_certificate_authenticates_as_its_principal(
    mtls_server: MemosServer, pki: Pki, connect: Connect
) -> None:
    name = register(connect, mtls_server, pki, pki.client.fingerprint)
    assert name.startswith("principals/")
    admin = connect(mtls_server, pki.ca, pki.client, token=admin_token(mtls_server))
    admins_space = new_space(admin)

    by_cert = connect(mtls_server, pki.ca, pki.client)  # no token: the certificate is the credential
    own = new_space(by_cert)
    assert own.owner == name
    listed = by_cert.ListSpaces(g.ListSpacesRequest(), timeout=TIMEOUT)
    assert [s.name for s in listed.spaces] == [own.name]
    with pytest.raises(grpc.RpcError) as hidden:
        by_cert.GetSpace(g.GetSpaceRequest(name=admins_space.name), timeout=TIMEOUT)
    assert (hidden.value.code(), reason_of(hidden.value)) == (grpc.StatusCode.NOT_FOUND, "SPACE_NOT_FOUND")
    with pytest.raises(grpc.RpcError) as denied:
        by_cert.ListPrincipals(g.ListPrincipalsRequest(), timeout=TIMEOUT)
    assert (denied.value.code(), reason_of(denied.value)) == (grpc.StatusCode.PERMISSION_DENIED, "ADMIN_REQUIRED")

    # The admin sees both spaces: the listing above was filtered by owner, not empty by accident.
    everything = admin.ListSpaces(g.ListSpacesRequest(), timeout=TIMEOUT)
    assert {own.name, admins_space.name} <= {s.name for s in everything.spaces}


def test_mtls_bearer_token_wins_over_registered_certificate(
    mtls_server: MemosServer, pki: Pki, connect: Connect
) -> None:
    name = register(connect, mtls_server, pki, pki.client.fingerprint)
    both = connect(mtls_server, pki.ca, pki.client, token=admin_token(mtls_server))
    principals = both.ListPrincipals(g.ListPrincipalsRequest(), timeout=TIMEOUT)  # admins only
    assert {"principals/admin", name} <= {p.name for p in principals.principals}
    assert new_space(both).owner == "principals/admin"


def test_mtls_unregistered_certificate_is_unauthenticated(mtls_server: MemosServer, pki: Pki, connect: Connect) -> None:
    register(connect, mtls_server, pki, pki.client.fingerprint)
    stranger = connect(mtls_server, pki.ca, pki.stranger)  # signed by the trusted CA, but nobody's
    with pytest.raises(grpc.RpcError) as caught:
        stranger.ListSpaces(g.ListSpacesRequest(), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(caught.value) == "UNKNOWN_CERTIFICATE"


@pytest.mark.parametrize("client", ["none", "rogue"])
def test_mtls_handshake_needs_a_certificate_from_the_client_ca(
    mtls_server: MemosServer, pki: Pki, connect: Connect, client: str
) -> None:
    presented = {"none": None, "rogue": pki.rogue_client}[client]
    # Even the admin token does not help: the connection never gets as far as a call.
    governance = connect(mtls_server, pki.ca, presented, token=admin_token(mtls_server))
    code = failed_code(lambda: governance.ListSpaces(g.ListSpacesRequest(), timeout=TIMEOUT))
    assert code == grpc.StatusCode.UNAVAILABLE


# -- bad settings ------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [{"tls_cert_file": "server.crt"}, {"tls_key_file": "server.key"}, {"tls_client_ca_file": "ca.crt"}],
    ids=["cert-only", "key-only", "client-ca-only"],
)
def test_incomplete_tls_settings_are_invalid_config(tmp_path: Path, given: dict[str, str]) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Settings.from_mapping({"data_dir": tmp_path, **given})
    assert caught.value.reason == "INVALID_CONFIG"


@pytest.mark.parametrize("setting", ["tls_cert_file", "tls_key_file", "tls_client_ca_file"])
def test_unreadable_tls_file_is_invalid_config_naming_it(tmp_path: Path, pki: Pki, setting: str) -> None:
    files = {
        "tls_cert_file": str(pki.server.cert),
        "tls_key_file": str(pki.server.key),
        "tls_client_ca_file": str(pki.ca.cert),
    }
    missing = str(tmp_path / "nowhere" / f"{setting}.pem")
    settings = Settings.from_mapping(
        {"data_dir": tmp_path / "data", "listen": "127.0.0.1:0", **files, setting: missing}
    )
    with pytest.raises(InvalidArgumentError) as caught:
        MemosServer(settings)
    assert caught.value.reason == "INVALID_CONFIG"
    assert missing in caught.value.message
    assert setting in caught.value.message


@pytest.mark.parametrize("setting", ["tls_cert_file", "tls_key_file", "tls_client_ca_file"])
def test_unparsable_tls_file_is_invalid_config_naming_it(tmp_path: Path, pki: Pki, setting: str) -> None:
    """A file that is there but not PEM is a config error, not "is another server using that port?"."""
    files = {
        "tls_cert_file": str(pki.server.cert),
        "tls_key_file": str(pki.server.key),
        "tls_client_ca_file": str(pki.ca.cert),
    }
    garbage = tmp_path / f"{setting}.pem"
    garbage.write_text("this is not PEM\n")
    settings = Settings.from_mapping(
        {"data_dir": tmp_path / "data", "listen": "127.0.0.1:0", **files, setting: str(garbage)}
    )
    with pytest.raises(InvalidArgumentError) as caught:
        MemosServer(settings)
    assert (caught.value.reason, str(garbage) in caught.value.message) == ("INVALID_CONFIG", True)


# -- the bootstrap admin token -----------------------------------------------


def test_admin_token_file_is_private_authenticates_and_survives_restart(tmp_path: Path, embedder: Embedder) -> None:
    data_dir = tmp_path / "data"
    token_file = data_dir / "admin.token"
    first = start_server(data_dir, embedder)
    try:
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = admin_token(first)
        with authorized_channel(first.address, token) as channel:
            listed = GovernanceServiceStub(channel).ListPrincipals(g.ListPrincipalsRequest(), timeout=TIMEOUT)
        # The admin, and the node key published as a principal.
        assert [p.name for p in listed.principals] == ["principals/admin", "principals/node"]
    finally:
        first.stop(grace=1)
    before = token_file.stat()

    second = start_server(data_dir, embedder)
    try:
        after = token_file.stat()
        assert (after.st_mtime_ns, after.st_ino, after.st_mode & 0o777) == (
            before.st_mtime_ns,
            before.st_ino,
            0o600,
        )
        assert admin_token(second) == token
        assert not (data_dir / "admin.token.tmp").exists()
        with authorized_channel(second.address, token) as channel:
            listed = GovernanceServiceStub(channel).ListPrincipals(g.ListPrincipalsRequest(), timeout=TIMEOUT)
        # The admin, and the node key published as a principal.
        assert [p.name for p in listed.principals] == ["principals/admin", "principals/node"]
    finally:
        second.stop(grace=1)
