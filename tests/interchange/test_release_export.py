"""ExportBundle with ``release``: a marketplace release bundle, its predicate naming listing, release, license
and terms digest in canonical JSON, which VerifyBundle (and so every other verifier) still accepts."""

from __future__ import annotations

import hashlib
import json

import grpc
import pytest
from memos_test_support import reason_of

from memos_grpc._proto.memos.v1 import cube_pb2, vault_service_pb2
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.marketplace.semver import check_release_id, precedence
from memos_grpc.primitives.canonical import canonical_json

TERMS_DIGEST = "sha256:" + hashlib.sha256(b"{}").hexdigest()


def release(**changes: str) -> i.ReleaseInfo:
    fields = {"listing": "listings/wine", "release": "1.2.0-rc.1", "license": "MIT", "terms_digest": TERMS_DIGEST}
    return i.ReleaseInfo(**(fields | changes))


def export(channel: grpc.Channel, request: i.ExportBundleRequest) -> bytes:
    return b"".join(r.chunk for r in InterchangeServiceStub(channel).ExportBundle(request))


def test_a_release_bundle_names_its_release_and_still_verifies(channel: grpc.Channel, space: str) -> None:
    VaultServiceStub(channel).CreateCube(
        vault_service_pb2.CreateCubeRequest(
            parent=space, cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="Rioja goes with lamb"))
        )
    )
    bundle = export(channel, i.ExportBundleRequest(parent=space, release=release()))
    report = InterchangeServiceStub(channel).VerifyBundle(iter([i.VerifyBundleRequest(chunk=bundle)])).verification
    assert report.valid, report.message
    statement = report.statement
    document = json.loads(statement)
    assert canonical_json(document) == statement  # still canonical
    predicate = document["predicate"]
    assert {k: predicate[k] for k in ("listing", "release", "license", "termsDigest")} == {
        "listing": "listings/wine",
        "release": "1.2.0-rc.1",
        "license": "MIT",
        "termsDigest": TERMS_DIGEST,
    }
    assert predicate["source"]["space"] == space and predicate["cubeCounts"] == {"plaintext": 1}
    # An ordinary export names none of them.
    plain = export(channel, i.ExportBundleRequest(parent=space))
    verified = InterchangeServiceStub(channel).VerifyBundle(iter([i.VerifyBundleRequest(chunk=plain)])).verification
    assert not {"listing", "release", "license", "termsDigest"} & set(json.loads(verified.statement)["predicate"])


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"listing": "wine"}, "INVALID_NAME"),
        ({"listing": ""}, "INVALID_NAME"),
        ({"release": "1.2"}, "INVALID_NAME"),
        ({"release": "1.2.0+build.5"}, "INVALID_NAME"),
        ({"release": "01.2.0"}, "INVALID_NAME"),
        ({"license": ""}, "TERMS_LICENSE_INVALID"),
        ({"license": "mit or apache-2.0"}, "TERMS_LICENSE_INVALID"),
        ({"license": "NotALicense-1.0"}, "TERMS_LICENSE_UNKNOWN"),
        ({"terms_digest": "sha256:" + "A" * 64}, "INVALID_DIGEST"),
        ({"terms_digest": ""}, "INVALID_DIGEST"),
    ],
)
def test_a_bad_release_is_refused_before_any_byte(
    channel: grpc.Channel, space: str, changes: dict[str, str], reason: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        export(channel, i.ExportBundleRequest(parent=space, release=release(**changes)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and reason_of(caught.value) == reason


def test_release_ids_sort_by_semver_precedence() -> None:
    # semver.org section 11's example, shuffled.
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11"]
    ordered += ["1.0.0-rc.1", "1.0.0", "2.0.0", "2.1.0", "2.1.1", "10.0.0"]
    assert sorted(reversed(ordered), key=precedence) == ordered
    assert check_release_id("1.0.0-0.3.7") == "1.0.0-0.3.7"
    for bad in ("1.0.0-01", "1.0", "v1.0.0", "1.0.0-", "1.0.0 ", "1" * 62 + ".0.0"):
        with pytest.raises(InvalidArgumentError):
            check_release_id(bad)
