"""The buyer's side at its edges: bad licensed imports, concurrent metering, restarts, derived cubes, windows.

Each test runs one real node that is its own marketplace and its own buyer (tests/marketplace/_buyer.py): alice
acquires a license of a release of listing ``weather`` and imports it into a space of hers, and the node meters
what its terms limit. tests/marketplace/test_buyer.py runs the same across four servers.
"""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from _buyer import FACTS, ORIGIN, Shop, held_name, open_shop, terms
from google.protobuf import field_mask_pb2, timestamp_pb2
from memos_test_support import reason_of
from tiny_models import save_llama

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import held_license_service_pb2 as h
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.held_license_service_pb2_grpc import HeldLicenseServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from tests.interchange._bundles import bundle, cube_entry, node_key, plaintext_cube
from tests.server._process import free_port

#: Import, search and recall; export and transform neither permitted nor prohibited.
PLAIN = terms("import", "search", "recall")


@pytest.fixture
def shop(tmp_path: Path, embedder: Embedder) -> Iterator[Shop]:
    opened = open_shop(tmp_path / "shop", embedder, free_port())
    yield opened
    opened.stop()


def _refused(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code(), reason_of(refused.value)


def _license_events(shop: Shop) -> list[str]:
    """The methods of the audit log's ``license.*`` events (one per counted use)."""
    events = GovernanceServiceStub(shop.admin).ListAuditEvents(g.ListAuditEventsRequest(page_size=1000)).events
    return [e.method for e in events if e.method.startswith("license.")]


def _held_count(shop: Shop) -> int:
    return len(HeldLicenseServiceStub(shop.admin).ListHeldLicenses(h.ListHeldLicensesRequest()).held_licenses)


def _bought(
    shop: Shop, release_terms: str = PLAIN, version: str = "1.0.0", space: str = "bought"
) -> tuple[str, m.License]:
    """A release under ``release_terms`` acquired by alice and imported into a new space of hers."""
    license_ = shop.acquire(shop.release(version, release_terms))
    parent = shop.space(space)
    assert shop.import_(parent, license_).created_count == len(FACTS)
    return parent, license_


# -- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        "heldLicenses/",
        "heldLicenses/abc",
        "heldLicenses/" + "A" * 64,  # the id is lowercase hex
        "heldLicenses/" + "g" * 64,
        "heldLicenses/" + "a" * 65,
        "licenses/" + "a" * 64,
        "heldLicenses/" + "a" * 64 + "/x",
    ],
)
def test_a_malformed_held_license_name_is_invalid_name(shop: Shop, name: str) -> None:
    stub = HeldLicenseServiceStub(shop.alice)
    assert _refused(lambda: stub.GetHeldLicense(h.GetHeldLicenseRequest(name=name))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_NAME",
    )


def test_a_well_formed_name_of_no_held_license_is_not_found(shop: Shop) -> None:
    stub = HeldLicenseServiceStub(shop.admin)
    request = h.GetHeldLicenseRequest(name="heldLicenses/" + "a" * 64)
    assert _refused(lambda: stub.GetHeldLicense(request)) == (grpc.StatusCode.NOT_FOUND, "HELD_LICENSE_NOT_FOUND")


def _bad_imports(shop: Shop, license_: m.License, parent: str) -> dict[str, list[i.ImportBundleRequest]]:
    bundle_ = shop.bundles[license_.release]
    good = i.ReleaseLicense(grant=license_.grant_envelope, proof=license_.tlog_proof)
    return {
        # The license belongs in the first message; a later one that sets it breaks the stream.
        "license on the second message": [
            i.ImportBundleRequest(parent=parent, chunk=bundle_[:512]),
            i.ImportBundleRequest(license=good, chunk=bundle_[512:]),
        ],
        "a grant that is not JSON": [
            i.ImportBundleRequest(
                parent=parent,
                license=i.ReleaseLicense(grant=b"\xff not json {", proof=license_.tlog_proof),
                chunk=bundle_,
            )
        ],
        "a garbage proof": [
            i.ImportBundleRequest(
                parent=parent,
                license=i.ReleaseLicense(grant=license_.grant_envelope, proof="c2sp.org/tlog-proof@v1\ngarbage\n"),
                chunk=bundle_,
            )
        ],
        "an empty grant with a proof": [
            i.ImportBundleRequest(parent=parent, license=i.ReleaseLicense(proof=license_.tlog_proof), chunk=bundle_)
        ],
    }


#: What each bad licensed import gets: a specific status and reason.
_BAD_IMPORT_REFUSALS = {
    "license on the second message": (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_STREAM"),
    "a grant that is not JSON": (grpc.StatusCode.FAILED_PRECONDITION, "GRANT_MALFORMED"),
    "a garbage proof": (grpc.StatusCode.FAILED_PRECONDITION, "TLOG_PROOF_MALFORMED"),
    "an empty grant with a proof": (grpc.StatusCode.FAILED_PRECONDITION, "GRANT_MALFORMED"),
}


@pytest.mark.parametrize("case", list(_BAD_IMPORT_REFUSALS))
def test_a_bad_licensed_import_is_refused_with_its_reason_and_writes_nothing(shop: Shop, case: str) -> None:
    license_ = shop.acquire(shop.release("1.0.0", PLAIN))
    parent = shop.space("bought")
    requests = _bad_imports(shop, license_, parent)[case]
    stub = InterchangeServiceStub(shop.alice)
    code, reason = _refused(lambda: stub.ImportBundle(iter(requests)))
    assert (code, reason) == _BAD_IMPORT_REFUSALS[case]
    assert shop.cubes(parent) == []
    assert _held_count(shop) == 0
    assert _license_events(shop) == []
    # The same license then imports: the refusal left nothing half done.
    assert shop.import_(parent, license_).created_count == len(FACTS)
    assert _license_events(shop) == ["license.import"]


# -- metering ----------------------------------------------------------------------------------------------------


def test_concurrent_recalls_are_counted_exactly_up_to_the_limit(shop: Shop) -> None:
    limit, callers = 3, 8
    parent, license_ = _bought(shop, terms("import", "recall", count={"recall": limit}))
    start = threading.Barrier(callers)
    answers: list[list[str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def recall() -> None:
        try:
            start.wait(timeout=30)
            got = shop.recall(parent)
        except BaseException as error:  # reported below, not lost in the thread
            with lock:
                errors.append(error)
            return
        with lock:
            answers.append(got)

    threads = [threading.Thread(target=recall) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and len(answers) == callers
    assert sorted(answers) == [[]] * (callers - limit) + [sorted(FACTS)] * limit
    recall_use = next(a for a in shop.held(license_).actions if a.action == "recall")
    assert (recall_use.uses, recall_use.allowed, recall_use.reason) == (limit, False, "LICENSE_LIMIT_REACHED")
    assert _license_events(shop).count("license.recall") == limit


@pytest.mark.parametrize("mode", [v.SEARCH_MODE_DENSE, v.SEARCH_MODE_LEXICAL, v.SEARCH_MODE_HYBRID])
@pytest.mark.parametrize("filter_", ["", "type = PLAINTEXT"])
def test_a_license_at_its_search_limit_leaves_every_kind_of_search(shop: Shop, mode: int, filter_: str) -> None:
    parent, license_ = _bought(shop, terms("import", "search", count={"search": 1}))
    own = VaultServiceStub(shop.alice).CreateCube(
        v.CreateCubeRequest(parent=parent, cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="Hail")))
    )

    def search() -> list[str]:
        request = v.SearchCubesRequest(parent=parent, text="hail weather", top_k=10, mode=mode, filter=filter_)  # type: ignore[arg-type]
        return sorted(r.cube.name for r in VaultServiceStub(shop.alice).SearchCubes(request).results)

    lexical = shop.vault.context.catalog.lexical
    assert lexical is not None
    lexical.refresh()  # searchable lexically now, not within lexical_refresh_seconds
    licensed = {c.name for c in shop.cubes(parent) if c.license.held_license}
    assert licensed & set(search())  # the one search the terms permit
    # Then only the cube of alice's own is found, whatever the mode and filter, and nothing more is counted.
    assert search() == [own.name]
    assert shop.uses(license_)["search"] == 1 and _license_events(shop).count("license.search") == 1


def test_uses_held_licenses_and_the_followed_log_survive_a_restart(shop: Shop) -> None:
    limited, at_limit = _bought(shop, terms("import", "search", "recall", count={"recall": 1}))
    assert shop.recall(limited) == sorted(FACTS)
    assert shop.recall(limited) == []
    revoked, to_revoke = _bought(shop, PLAIN, version="2.0.0", space="revoked")
    shop.revoke(to_revoke)
    followed = shop.sync()
    assert followed.origin == ORIGIN and shop.search(revoked) == []
    before = [(n, shop.held(n)) for n in (at_limit, to_revoke)]

    # Without its token the node cannot sync at start: what it shows after the restart is what it kept.
    (shop.data_dir.parent / "follow.token").unlink()
    shop.restart()

    logs = HeldLicenseServiceStub(shop.admin).ListFollowedLogs(h.ListFollowedLogsRequest()).logs
    assert [(f.origin, f.tree_size, f.root_hash, f.checkpoint) for f in logs] == [
        (followed.origin, followed.tree_size, followed.root_hash, followed.checkpoint)
    ]
    assert (logs[0].fresh_time, logs[0].sync_time) == (followed.fresh_time, followed.sync_time)
    for license_, held in before:
        assert shop.held(license_) == held
    assert shop.recall(limited) == [] and shop.search(limited) == sorted(FACTS)
    assert shop.held(at_limit).actions[1].uses == 1  # recall, in METERED order: import, recall, ...
    assert shop.recall(revoked) == [] and shop.search(revoked) == []
    assert (shop.held(to_revoke).state, shop.held(to_revoke).state_reason) == (
        h.HELD_LICENSE_STATE_REVOKED,
        "LICENSE_REVOKED",
    )


def test_a_grant_whose_window_has_passed_takes_its_cubes_out_of_search_and_recall(shop: Shop) -> None:
    release = shop.release("1.0.0", PLAIN)
    vault = shop.vault
    now = vault.context.clock()
    not_after = timestamp_pb2.Timestamp(seconds=int(now.timestamp()) + 600)
    license_ = shop.acquire(release, not_after=not_after)
    parent = shop.space("bought")
    shop.import_(parent, license_)
    assert shop.search(parent) == sorted(FACTS) and shop.recall(parent) == sorted(FACTS)
    real = vault.context.clock
    # Past not_after, well within maxOfflineSeconds of the import's fresh checkpoint: expired, not suspended.
    vault.context.clock = lambda: real() + timedelta(seconds=660)
    try:
        assert shop.search(parent) == [] and shop.recall(parent) == []
        held = shop.held(license_)
        assert (held.state, held.state_reason) == (h.HELD_LICENSE_STATE_EXPIRED, "LICENSE_EXPIRED")
        assert {a.reason for a in held.actions} == {"LICENSE_EXPIRED"}
    finally:
        vault.context.clock = real
    assert {a.action: a.uses for a in shop.held(license_).actions}["search"] == 1  # the refused search not counted


# -- what is derived from licensed cubes ---------------------------------------------------------------------


def _merge(shop: Shop, parent: str, names: list[str]) -> cube_pb2.MemCube:
    merged: cube_pb2.MemCube = VaultServiceStub(shop.alice).MergeCubes(
        v.MergeCubesRequest(
            parent=parent,
            names=names,
            cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="Weather: rain, fog and hail")),
        )
    )
    return merged


def test_merging_licensed_cubes_needs_transform_and_carries_the_license(shop: Shop) -> None:
    parent, license_ = _bought(shop, PLAIN)
    names = [c.name for c in shop.cubes(parent)][:2]
    assert _refused(lambda: _merge(shop, parent, names)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "LICENSE_ACTION_NOT_PERMITTED",
    )
    assert len(shop.cubes(parent)) == len(FACTS) and shop.uses(license_)["transform"] == 0

    permitted, licensed = _bought(shop, terms("import", "search", "transform"), version="2.0.0", space="derived")
    names = [c.name for c in shop.cubes(permitted)][:2]
    merged = _merge(shop, permitted, names)
    assert merged.license.held_license == held_name(licensed)
    assert merged.license.release == licensed.release and merged.license.grant_digest == licensed.grant_digest
    assert shop.uses(licensed)["transform"] == 1
    assert _license_events(shop).count("license.transform") == 1


def test_cubes_of_two_licenses_are_not_merged(shop: Shop) -> None:
    first, _ = _bought(shop, terms("import", "transform"))
    second_license = shop.acquire(shop.release("2.0.0", terms("import", "transform")))
    shop.import_(first, second_license)  # both releases' cubes in one space
    by_release: dict[str, str] = {}
    for cube in shop.cubes(first):
        by_release.setdefault(cube.license.release, cube.name)
    assert len(by_release) == 2
    before = len(shop.cubes(first))
    code, reason = _refused(lambda: _merge(shop, first, sorted(by_release.values())))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LICENSES_MIXED")
    assert len(shop.cubes(first)) == before
    assert _license_events(shop).count("license.transform") == 0


def test_a_merge_refused_after_the_license_check_counts_no_use(shop: Shop) -> None:
    parent, license_ = _bought(shop, terms("import", "search", "transform"))
    cubes = shop.cubes(parent)
    names = [c.name for c in cubes][:2]
    taken = cubes[2].name.rsplit("/", 1)[1]
    request = v.MergeCubesRequest(
        parent=parent, names=names, cube_id=taken, cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="x"))
    )
    stub = VaultServiceStub(shop.alice)
    code, reason = _refused(lambda: stub.MergeCubes(request))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "CUBE_ALREADY_EXISTS")
    assert shop.uses(license_)["transform"] == 0 and "license.transform" not in _license_events(shop)
    # Merged once, counted once; the sources are MERGED then, and merging them again is refused, uncounted.
    _merge(shop, parent, names)
    assert _refused(lambda: _merge(shop, parent, names))[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert shop.uses(license_)["transform"] == 1 and _license_events(shop).count("license.transform") == 1


def test_a_transform_refused_after_the_license_check_counts_no_use(tmp_path: Path, embedder: Embedder) -> None:
    # A node with a (tiny) model, so that an adapter's training plan is checked, after the sources and license.
    trainer = open_shop(tmp_path / "trainer", embedder, free_port(), model_dir=str(save_llama(tmp_path / "model")))
    try:
        license_ = trainer.acquire(trainer.release("1.0.0", terms("import", "transform")))
        parent = trainer.space("bought")
        trainer.import_(parent, license_)
        request = s.TransformCubeRequest(
            parent=parent,
            names=[c.name for c in trainer.cubes(parent)],
            target_type=cube_pb2.MEMORY_TYPE_PARAMETRIC,
            training=s.LoraTraining(steps=10**6),
        )
        code, reason = _refused(lambda: SchedulerServiceStub(trainer.alice).TransformCube(request))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TRAINING")
        assert trainer.uses(license_)["transform"] == 0 and "license.transform" not in _license_events(trainer)
    finally:
        trainer.stop()


def _demote(shop: Shop, name: str) -> list[s.Operation]:
    """TransformCube of ``name`` to PLAINTEXT (a demotion: no model needed), followed until it is done."""
    scheduler = SchedulerServiceStub(shop.alice)
    parent = name.split("/cubes/")[0]
    request = s.TransformCubeRequest(parent=parent, names=[name], target_type=cube_pb2.MEMORY_TYPE_PLAINTEXT)
    operation = scheduler.TransformCube(request)
    return list(scheduler.WatchOperation(s.WatchOperationRequest(name=operation.name), timeout=120))


def _cache_of(shop: Shop, parent: str) -> cube_pb2.MemCube:
    (cube,) = [c for c in shop.cubes(parent) if c.type == cube_pb2.MEMORY_TYPE_ACTIVATION]
    return cube


def test_demoting_a_licensed_cache_needs_transform_and_is_counted(shop: Shop) -> None:
    source = "Dew forms on clear calm nights"
    refused = shop.acquire(shop.release("1.0.0", PLAIN, cached=source))
    parent = shop.space("refused")
    shop.import_(parent, refused)
    cache = _cache_of(shop, parent)
    assert _refused(lambda: _demote(shop, cache.name)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "LICENSE_ACTION_NOT_PERMITTED",
    )
    assert _cache_of(shop, parent) == cache and shop.uses(refused)["transform"] == 0

    permitted = shop.acquire(shop.release("2.0.0", terms("import", "transform"), cached=source))
    parent = shop.space("permitted")
    shop.import_(parent, permitted)
    cache = _cache_of(shop, parent)
    final = _demote(shop, cache.name)[-1]
    assert final.state == s.Operation.STATE_SUCCEEDED, final
    demoted = VaultServiceStub(shop.alice).GetCube(v.GetCubeRequest(name=cache.name))
    assert (demoted.type, demoted.plaintext.text) == (cube_pb2.MEMORY_TYPE_PLAINTEXT, source)
    assert demoted.license == cache.license and demoted.license.held_license == held_name(permitted)
    assert shop.uses(permitted)["transform"] == 1
    assert _license_events(shop).count("license.transform") == 1


# -- the license field itself ---------------------------------------------------------------------------------


def test_a_re_export_carries_no_license_and_an_import_drops_a_claimed_one(shop: Shop) -> None:
    parent, license_ = _bought(shop, terms("import", "export"))
    exported = b"".join(
        r.chunk for r in InterchangeServiceStub(shop.alice).ExportBundle(i.ExportBundleRequest(parent=parent))
    )
    with tarfile.open(fileobj=io.BytesIO(exported)) as archive:
        cubes = [
            cube_pb2.MemCube.FromString(archive.extractfile(member).read())  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.name.startswith("cubes/")
        ]
    assert len(cubes) == len(FACTS) and not any(c.HasField("license") for c in cubes)
    assert shop.uses(license_)["export"] == 1

    # A bundle whose cube claims a license (signed by a key the node trusts) is imported without it.
    claimed = plaintext_cube("A forged claim of a license")
    claimed.license.CopyFrom(
        cube_pb2.CubeLicense(
            held_license=held_name(license_), release=license_.release, grant_digest=license_.grant_digest
        )
    )
    plain = shop.space("plain")
    first = i.ImportBundleRequest(parent=plain, chunk=bundle(node_key(shop.server), [cube_entry(claimed)]))
    assert InterchangeServiceStub(shop.alice).ImportBundle(iter([first])).created_count == 1
    (stored,) = shop.cubes(plain)
    assert not stored.HasField("license")
    assert shop.held(license_).cube_count == len(FACTS)


def test_update_cube_can_neither_set_nor_clear_a_license(shop: Shop) -> None:
    parent, license_ = _bought(shop, PLAIN)
    licensed = shop.cubes(parent)[0]
    stub = VaultServiceStub(shop.alice)
    cleared = cube_pb2.MemCube(name=licensed.name)
    mask = field_mask_pb2.FieldMask(paths=["license"])
    assert _refused(lambda: stub.UpdateCube(v.UpdateCubeRequest(cube=cleared, update_mask=mask))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_UPDATE_MASK",
    )
    # A license in the body of an update that names other fields is ignored, whichever way it points.
    other = cube_pb2.MemCube(name=licensed.name, tags=["weather"])
    other.license.held_license = "heldLicenses/" + "b" * 64
    updated = stub.UpdateCube(v.UpdateCubeRequest(cube=other, update_mask=field_mask_pb2.FieldMask(paths=["tags"])))
    assert list(updated.tags) == ["weather"] and updated.license == licensed.license
    plain = stub.CreateCube(
        v.CreateCubeRequest(parent=parent, cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="mine")))
    )
    claiming = cube_pb2.MemCube(name=plain.name, tags=["mine"])
    claiming.license.CopyFrom(licensed.license)
    mask = field_mask_pb2.FieldMask(paths=["tags"])
    assert not stub.UpdateCube(v.UpdateCubeRequest(cube=claiming, update_mask=mask)).HasField("license")
    assert shop.held(license_).cube_count == len(FACTS)


def test_uses_no_limit_depends_on_are_written_in_batches_and_all_of_them(shop: Shop) -> None:
    """Searches of a license whose terms set no search count are counted at once in memory (the held license
    shows them) and written, each with its audit event, by the next batch: none lost, none counted twice."""
    parent, license_ = _bought(shop, terms("import", "search"))
    for _ in range(5):
        assert shop.search(parent) == sorted(FACTS)
    uses = {a.action: a.uses for a in shop.held(license_).actions}
    assert uses["search"] == 5
    book = shop.server.vault.license_book  # type: ignore[union-attr]
    book.flush()  # what the flusher does every license_flush_seconds
    assert _license_events(shop).count("license.search") == 5
    with shop.server.vault.context.database.read() as cursor:  # type: ignore[union-attr]
        row = cursor.execute(
            "SELECT uses FROM held_license_uses WHERE action = 'search' AND license_id = ?",
            [license_.grant_digest.removeprefix("sha256:")],
        ).fetchone()
    assert row is not None and int(row[0]) == 5
    book.flush()
    assert _license_events(shop).count("license.search") == 5
