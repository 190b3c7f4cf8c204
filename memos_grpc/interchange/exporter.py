"""Export: a selection of one space's cubes as a signed bundle, streamed.

The selection is read once, before the first byte is sent, so bad requests
fail with a status rather than a broken stream: each cube (after the space's
export redaction rules) is serialized to a spool file and hashed, the
statement listing every cube and blob is signed, and then the bundle streams
from the spool and the blob store. Memory does not grow with blob sizes.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2, interchange_service_pb2, space_pb2
from memos_grpc.errors import NotFoundError, ResourceExhaustedError
from memos_grpc.governance.caller import Caller
from memos_grpc.interchange.bundle import BundleEntry, rechunk, write_bundle
from memos_grpc.interchange.dsse import STATEMENT_PAYLOAD_TYPE, sign_envelope
from memos_grpc.interchange.signers import Signers
from memos_grpc.interchange.statement import (
    FORMAT_VERSION,
    RELEASE_FIELDS,
    Subject,
    blob_entry_name,
    build_statement,
    cube_entry_name,
)
from memos_grpc.marketplace.listings import parse_listing_name
from memos_grpc.marketplace.semver import check_release_id
from memos_grpc.marketplace.terms import TermsError, check_license_expression
from memos_grpc.primitives.canonical import format_time
from memos_grpc.store.catalog import redaction_rules
from memos_grpc.store.export import exported_cubes
from memos_grpc.store.filter import compile_filter
from memos_grpc.store.names import parse_cube_name, parse_space_name
from memos_grpc.store.rows import blob_digest, vector_from_bytes
from memos_grpc.store.spaces import space_by_id
from memos_grpc.store.visibility import CubeVisibility, held_license_id, redact_text
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.licensing import EXPORT
from memos_grpc.vault.validation import invalid

log = logging.getLogger(__name__)

_WITHHOLD = space_pb2.RedactionRule.ACTION_WITHHOLD
_REDACT = space_pb2.RedactionRule.ACTION_REDACT_TEXT
_ACTION_NAMES: dict[int, str] = {_WITHHOLD: "WITHHOLD", _REDACT: "REDACT_TEXT"}
_TERMS_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TYPE_NAMES = {
    cube_pb2.MEMORY_TYPE_PLAINTEXT: "plaintext",
    cube_pb2.MEMORY_TYPE_ACTIVATION: "activation",
    cube_pb2.MEMORY_TYPE_PARAMETRIC: "parametric",
}


@dataclass
class _Spooled:
    """Cube entries written to a spool file, and what the statement needs to know of them."""

    spool: IO[bytes]
    entries: list[tuple[Subject, int]] = field(default_factory=list)
    blobs: dict[str, int] = field(default_factory=dict)
    types: Counter[str] = field(default_factory=Counter)
    models: set[str] = field(default_factory=set)
    redactions: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: The held licenses of the cubes spooled.
    licenses: set[str] = field(default_factory=set)
    offset: int = 0

    def add(self, cube: cube_pb2.MemCube) -> None:
        data = cube.SerializeToString(deterministic=True)
        self.spool.write(data)
        subject = Subject(cube_entry_name(cube.provenance_id), hashlib.sha256(data).hexdigest(), len(data))
        self.entries.append((subject, self.offset))
        self.offset += len(data)
        self.types[_TYPE_NAMES.get(cube.type, "unspecified")] += 1
        fingerprint = _model_fingerprint(cube)
        if fingerprint:
            self.models.add(fingerprint)


class Exporter:
    """ExportBundle: one space's cubes, as the caller may see them, written as a bundle the node signs.

    Reads, redacts, spools and signs before returning, so bad requests and license refusals raise a
    ``MemosError`` rather than break the stream; the returned chunks own a spool file, closed when they are
    exhausted or closed. Holds no state between exports.
    """

    def __init__(self, context: VaultContext, signers: Signers) -> None:
        self._context = context
        self._signers = signers

    def export(self, request: interchange_service_pb2.ExportBundleRequest, caller: Caller) -> Iterator[bytes]:
        """Selects and signs at once (raising on bad requests); returns the bundle's chunks to stream."""
        space_id = parse_space_name(request.parent, "parent")
        release = release_fields(request.release) if request.HasField("release") else {}
        spooled = _Spooled(tempfile.TemporaryFile(dir=self._context.blobs.temp_dir))  # noqa: SIM115 - closed below
        try:
            space = self._select(space_id, request, caller, spooled)
            # Licensed cubes leave only as their terms permit, and each export counts (docs/marketplace.md).
            self._context.licenses.require(EXPORT, spooled.licenses, caller.principal)
            spooled.spool.flush()
            subjects = [s for s, _ in spooled.entries] + [
                Subject(blob_entry_name(d), d.removeprefix("sha256:"), size)
                for d, size in sorted(spooled.blobs.items())
            ]
            statement = build_statement(subjects, self._predicate(space, request, caller, spooled) | release)
            envelope = sign_envelope(STATEMENT_PAYLOAD_TYPE, statement, self._signers.bundle_signers(caller.principal))
        except BaseException:
            spooled.spool.close()
            raise
        return self._stream(write_bundle(envelope, self._entries(spooled)), spooled)

    def _stream(self, pieces: Iterable[bytes], spooled: _Spooled) -> Iterator[bytes]:
        sent, started = 0, time.monotonic()
        try:
            for chunk in rechunk(pieces, self._context.settings.bundle_chunk_bytes):
                sent += len(chunk)
                yield chunk
            log.info(
                "exported a bundle of %d cubes and %d blobs: %d bytes in %.1fs",
                len(spooled.entries),
                len(spooled.blobs),
                sent,
                time.monotonic() - started,
            )
        finally:
            spooled.spool.close()

    def _select(
        self,
        space_id: str,
        request: interchange_service_pb2.ExportBundleRequest,
        caller: Caller,
        spooled: _Spooled,
    ) -> space_pb2.Space:
        context = self._context
        compiled = compile_filter(request.filter, max_length=context.settings.max_filter_length)
        cube_ids = sorted({self._cube_id(space_id, name, i) for i, name in enumerate(request.names)})
        visibility = CubeVisibility(caller, context.catalog, space_id)
        limit = context.settings.bundle_max_cubes
        with context.database.read() as cursor:
            space = space_by_id(cursor, space_id)
            if space is None:
                raise NotFoundError(f"space {request.parent} does not exist", reason=reasons.SPACE_NOT_FOUND)
            rules = redaction_rules(space, space_pb2.RedactionRule.AUDIENCE_EXPORT)
            # What a viewer may not read, it may not export either (the selection leaves out what it withholds).
            for label in visibility.redacted:
                if rules.get(label) != _WITHHOLD:
                    rules[label] = _REDACT
            selected = exported_cubes(cursor, space_id, context.clock(), visibility, cube_ids, compiled)
            for count, (cube, embedding) in enumerate(selected, start=1):
                if count > limit:
                    raise ResourceExhaustedError(
                        f"the selection holds more than {limit} cubes (bundle_max_cubes); narrow it with a filter",
                        reason=reasons.EXPORT_TOO_LARGE,
                    )
                self._add(cube, embedding, rules, spooled)
        for digest in spooled.blobs:
            spooled.blobs[digest] = context.blobs.size(digest)  # BLOB_NOT_FOUND when the store lacks it
        return space

    @staticmethod
    def _cube_id(space_id: str, name: str, index: int) -> str:
        named_space, cube_id = parse_cube_name(name, f"names[{index}]")
        if named_space != space_id:
            raise invalid(f"names[{index}] {name!r} is not in the exported space", reasons.PARENT_MISMATCH)
        return cube_id

    @staticmethod
    def _add(cube: cube_pb2.MemCube, embedding: bytes | None, rules: dict[str, int], spooled: _Spooled) -> None:
        action, label = _strongest(rules, cube)
        if action == _REDACT and not cube.HasField("plaintext"):
            action = _WITHHOLD  # a blob cannot be redacted, only left out
        if action:
            spooled.redactions[(label, action)] += 1
        if action == _WITHHOLD:
            return
        license_id = held_license_id(cube)
        if license_id:
            spooled.licenses.add(license_id)
            cube.ClearField("license")  # this node's record of its license, not part of the memory
        if action == _REDACT:
            redact_text(cube)
            embedding = None  # the vector of the original text would leak what was redacted
        elif embedding is not None:
            cube.embedding.extend(vector_from_bytes(embedding).tolist())
        spooled.add(cube)
        digest = blob_digest(cube)
        if digest:
            spooled.blobs[digest] = 0

    def _entries(self, spooled: _Spooled) -> Iterator[BundleEntry]:
        for subject, offset in spooled.entries:
            yield BundleEntry(subject.name, subject.size, _spool_reader(spooled.spool, offset, subject.size))
        chunk = self._context.settings.payload_chunk_bytes
        for digest, size in sorted(spooled.blobs.items()):
            yield BundleEntry(
                blob_entry_name(digest),
                size,
                lambda d=digest: self._context.blobs.read(d, chunk_bytes=chunk),  # type: ignore[misc]
            )

    def _predicate(
        self,
        space: space_pb2.Space,
        request: interchange_service_pb2.ExportBundleRequest,
        caller: Caller,
        spooled: _Spooled,
    ) -> dict[str, Any]:
        context = self._context
        return {
            "formatVersion": FORMAT_VERSION,
            "created": format_time(context.clock()),
            "exporter": {"principal": caller.principal, "node": self._signers.node.key_id},
            "source": {
                "server": context.settings.node_name or socket.gethostname(),
                "space": space.name,
                "filter": request.filter,
            },
            "cubeCounts": dict(sorted(spooled.types.items())),
            "embeddingFingerprint": context.embedder.fingerprint,
            "modelFingerprints": sorted(spooled.models),
            "redactions": [
                {"sensitivityLabel": label, "action": _ACTION_NAMES[action], "cubes": count}
                for (label, action), count in sorted(spooled.redactions.items())
            ],
        }


def release_fields(release: interchange_service_pb2.ReleaseInfo) -> dict[str, Any]:
    """The predicate members that make a bundle a marketplace release, each checked (INVALID_ARGUMENT)."""
    parse_listing_name(release.listing, "release.listing")
    check_release_id(release.release, "release.release")
    try:
        check_license_expression(release.license)
    except TermsError as exc:
        raise invalid(f"release.license: {exc.message}", exc.reason) from exc
    if not _TERMS_DIGEST.fullmatch(release.terms_digest):
        raise invalid(
            f"release.terms_digest {release.terms_digest[:80]!r} is not sha256:<64 lowercase hex>",
            reasons.INVALID_DIGEST,
        )
    values = (release.listing, release.release, release.license, release.terms_digest)
    return dict(zip(RELEASE_FIELDS, values, strict=True))


def _spool_reader(spool: IO[bytes], offset: int, size: int) -> Any:
    def read() -> list[bytes]:
        spool.seek(offset)
        return [spool.read(size)]

    return read


def _strongest(rules: dict[str, int], cube: cube_pb2.MemCube) -> tuple[int, str]:
    """The strongest export rule matching the cube's labels (withhold beats redact), and its label."""
    best, best_label = 0, ""
    for label in sorted(cube.sensitivity_labels):
        action = rules.get(label, 0)
        if action != best and (action == _WITHHOLD or (action == _REDACT and best != _WITHHOLD)):
            best, best_label = action, label
    return best, best_label


def _model_fingerprint(cube: cube_pb2.MemCube) -> str:
    if cube.HasField("activation"):
        return cube.activation.model_fingerprint
    if cube.HasField("parametric"):
        return cube.parametric.model_fingerprint
    return ""
