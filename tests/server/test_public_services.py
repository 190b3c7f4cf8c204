"""Health and reflection as a client without a token sees them: every method they list works.

Reflection lists exactly the services the server registers, every method of
each has an access rule of its own (none falls to the admin-only default),
Health.List answers without a token like Check, and request bytes that do
not decode are refused as MALFORMED_REQUEST by the reflection stream as by
every other method, never INTERNAL (the fuzz tests send such bytes to every
method).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from memos_test_support import admin_token, authorized_channel, reason_of

from memos_grpc.governance.rules import RULES
from memos_grpc.server.app import REGISTERED_SERVICES, SERVICE_NAMES, MemosServer

SERVING = health_pb2.HealthCheckResponse.SERVING
HEALTH = "/grpc.health.v1.Health/"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


@pytest.fixture
def anonymous(server: MemosServer) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(server.address)
    yield channel
    channel.close()


def reflected_methods(channel: grpc.Channel) -> dict[str, list[str]]:
    """Every service reflection lists, with its methods, read from the descriptors it serves."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (listed,) = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    names = [service.name for service in listed.list_services_response.service]
    asks = [reflection_pb2.ServerReflectionRequest(file_containing_symbol=name) for name in names]
    methods: dict[str, list[str]] = {}
    for name, answer in zip(names, stub.ServerReflectionInfo(iter(asks), timeout=10), strict=True):
        package, _, short = name.rpartition(".")
        for blob in answer.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
            for service in proto.service:
                if proto.package == package and service.name == short:
                    methods[name] = [method.name for method in service.method]
    return methods


def test_reflection_lists_the_registered_services_and_every_method_has_its_own_rule(
    anonymous: grpc.Channel,
) -> None:
    methods = reflected_methods(anonymous)
    assert sorted(methods) == sorted(REGISTERED_SERVICES)
    paths = {f"/{service}/{method}" for service, names in methods.items() for method in names}
    assert f"{HEALTH}List" in paths
    assert sorted(paths - set(RULES)) == [], "methods that would fall to the admin-only default rule"


def test_health_list_needs_no_token_and_reports_every_service(server: MemosServer, anonymous: grpc.Channel) -> None:
    anonymous_answer = health_pb2_grpc.HealthStub(anonymous).List(health_pb2.HealthListRequest(), timeout=10)
    statuses = {name: response.status for name, response in anonymous_answer.statuses.items()}
    assert statuses == {name: SERVING for name in ("", *SERVICE_NAMES)}
    admin = authorized_channel(server.address, admin_token(server))
    try:
        assert health_pb2_grpc.HealthStub(admin).List(health_pb2.HealthListRequest(), timeout=10) == anonymous_answer
    finally:
        admin.close()


_GOOD = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()


# b"\xff" starts a varint that never ends: no message of any type decodes from it.
@pytest.mark.parametrize(
    "stream", [[b"\xff"], [_GOOD, b"\xff"]], ids=["first message undecodable", "after a good message"]
)
def test_reflection_refuses_undecodable_bytes_as_malformed_request(
    anonymous: grpc.Channel, stream: list[bytes]
) -> None:
    answers: list[bytes] = []
    with pytest.raises(grpc.RpcError) as caught:
        for answer in anonymous.stream_stream(REFLECTION, None, None)(iter(stream), timeout=10):
            answers.append(answer)
    assert len(answers) == len(stream) - 1  # the good message before it was answered
    assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
