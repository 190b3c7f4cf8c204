"""BM25 in SQL on PostgreSQL: the documents written with the cubes, and the scores the database gives them.

Each test opens stores on a fresh database, as servers do (``open_store``), and writes through ``CubeStore.write``,
so the documents come from the same transactions as the cube rows. Scores are checked against BM25 computed by
hand with numpy; the statistics are each space's own; removed, replaced and expired cubes' documents go with them;
a rolled-back write leaves nothing; a second server sharing the database finds a document as soon as the write
that made it returns; and a database that held cubes before the documents existed gets them at its next opening.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc.settings import Settings
from memos_grpc.store.cubes import EmbeddedCubeStore
from memos_grpc.store.interface import CubeWrite
from memos_grpc.store.opening import open_store
from memos_grpc.store.postgres import vector_type
from memos_grpc.store.postgres.cursor import PgCursor
from memos_grpc.store.postgres.database import connection_options
from memos_grpc.store.postgres.lexical_documents import TEXT_BYTES, indexed_text
from memos_grpc.store.postgres.lexical_search import K1, PENDING, B
from memos_grpc.store.postgres.migrations import migrate
from memos_grpc.store.rows import CubeRow, insert_rows, next_version
from memos_grpc.store.spaces import insert_space, space_created
from memos_grpc.store.store import Store
from memos_grpc.store.vectors import IndexParams

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DIMENSION = 8
LEXICAL_TABLES = ("lexical_spaces", "lexical_docs", "lexical_postings", "lexical_terms")

#: A tiny corpus as the lexemes each text is split into (by hand: lower case, stems, no stop words).
CORPUS: dict[str, tuple[str, list[str]]] = {
    "a": ("heron heron river", ["heron", "heron", "river"]),
    "b": ("The otters fished in the rivers", ["otter", "fish", "river"]),
    "c": ("heron marsh stone stone stone", ["heron", "marsh", "stone", "stone", "stone"]),
    "d": ("otter", ["otter"]),
    "e": (
        "A heron by the river, a heron in the marsh, a heron on a stone",
        ["heron", "river", "heron", "marsh", "heron", "stone"],
    ),
}


def hand_bm25(documents: dict[str, list[str]], query: list[str]) -> dict[str, float]:
    """BM25 as tantivy computes it (k1 = 1.2, b = 0.75, idf = ln(1 + (N - df + 0.5) / (df + 0.5))), by numpy."""
    names = list(documents)
    lengths = np.array([len(documents[name]) for name in names], dtype=np.float64)
    scores = np.zeros(len(names))
    for term in set(query):
        tf = np.array([Counter(documents[name])[term] for name in names], dtype=np.float64)
        df = np.count_nonzero(tf)
        if df == 0:
            continue
        idf = np.log(1 + (len(names) - df + 0.5) / (df + 0.5))
        scores += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * lengths / lengths.mean()))
    return {name: float(score) for name, score in zip(names, scores, strict=True) if score > 0}


def _open(data_dir: Path, url: str) -> Store:
    params = IndexParams(dimension=DIMENSION, m=8, ef_construction=32, ef_search=32)
    return open_store(Settings(data_dir=data_dir, postgres_url=url), params)[0]


@pytest.fixture
def store(tmp_path: Path, url: str) -> Iterator[Store]:
    opened = _open(tmp_path / "a", url)
    yield opened
    opened.close()


def _create_space(store: Store, space_id: str) -> None:
    space = space_pb2.Space(name=f"spaces/{space_id}")
    store.database.write(lambda cursor: insert_space(cursor, space_id, space, NOW, "principals/ada"))
    space_created(store.catalog, space_id, "principals/ada", space)


def _row(store: Store, space_id: str, cube_id: str, text: str, *, expire: datetime | None = None) -> CubeRow:
    cube = cube_pb2.MemCube(name=f"spaces/{space_id}/cubes/{cube_id}", type=cube_pb2.MEMORY_TYPE_PLAINTEXT)
    cube.plaintext.text = text
    cube.create_time.FromDatetime(NOW)
    if expire is not None:
        cube.expire_time.FromDatetime(expire)
    next_version(cube, 0, NOW)
    vector = np.random.default_rng(len(text)).standard_normal(DIMENSION).astype(np.float32)
    return CubeRow(space_id, cube_id, cube, EmbeddedCubeStore(store).new_labels(1)[0], vector / np.linalg.norm(vector))


def _create(store: Store, space_id: str, texts: dict[str, str]) -> dict[str, CubeRow]:
    rows = {cube_id: _row(store, space_id, cube_id, text) for cube_id, text in texts.items()}
    EmbeddedCubeStore(store).write(lambda write: write.create(list(rows.values())), NOW)
    return rows


def _label(row: CubeRow) -> int:
    assert row.vec_id is not None
    return row.vec_id


def _search(store: Store, space_id: str, text: str, limit: int = 100) -> list[tuple[int, float]]:
    assert store.catalog.lexical is not None
    return store.catalog.lexical.search(space_id, text, limit)


def _labels(store: Store, space_id: str, text: str) -> list[int]:
    return [label for label, _ in _search(store, space_id, text)]


def _rows_of(store: Store, space_id: str) -> dict[str, int]:
    with store.database.read() as cursor:
        return {
            table: int(cursor.execute(f"SELECT count(*) FROM {table} WHERE space_id = ?", [space_id]).fetchall()[0][0])
            for table in LEXICAL_TABLES
        }


def _statistics_hold(store: Store, space_id: str) -> None:
    """The kept statistics equal those counted from the documents and postings."""
    with store.database.read() as cursor:
        kept = cursor.execute(
            "SELECT doc_count, total_length FROM lexical_spaces WHERE space_id = ?", [space_id]
        ).fetchall()
        counted = cursor.execute(
            "SELECT count(*), coalesce(sum(length), 0) FROM lexical_docs WHERE space_id = ?", [space_id]
        ).fetchall()
        frequencies = cursor.execute(
            "SELECT term, df FROM lexical_terms WHERE space_id = ? ORDER BY term", [space_id]
        ).fetchall()
        postings = cursor.execute(
            "SELECT term, count(*) FROM lexical_postings WHERE space_id = ? GROUP BY term ORDER BY term", [space_id]
        ).fetchall()
    # A space whose documents all went keeps its row, at zero.
    assert (tuple(kept[0]) if kept else (0, 0)) == tuple(counted[0])
    assert frequencies == postings


def test_scores_are_bm25_over_the_spaces_documents(store: Store) -> None:
    _create_space(store, "notes")
    rows = _create(store, "notes", {name: text for name, (text, _) in CORPUS.items()})
    lexemes = {name: words for name, (_, words) in CORPUS.items()}
    by_label = {row.vec_id: name for name, row in rows.items()}

    for query in ("heron", "river otter", "Herons by the marshes", "stone heron river otter fish"):
        # The query is split as the documents are: "Herons by the marshes" is heron, marsh.
        terms = {
            "heron": ["heron"],
            "river otter": ["river", "otter"],
            "Herons by the marshes": ["heron", "marsh"],
            "stone heron river otter fish": ["stone", "heron", "river", "otter", "fish"],
        }[query]
        expected = hand_bm25(lexemes, terms)
        found = {by_label[label]: score for label, score in _search(store, "notes", query)}
        assert found == pytest.approx(expected, rel=1e-9)
        ranked = [by_label[label] for label, _ in _search(store, "notes", query)]
        assert ranked == sorted(expected, key=lambda name: -expected[name])
    assert _search(store, "notes", "heron", limit=2) == _search(store, "notes", "heron")[:2]
    # Words the index leaves out (stop words, punctuation) and unknown words find nothing.
    assert _search(store, "notes", "the and of") == []
    assert _search(store, "notes", "kingfisher") == []
    assert _search(store, "notes", "  ") == []
    assert _search(store, "elsewhere", "heron") == []
    _statistics_hold(store, "notes")


def test_a_spaces_scores_ignore_other_spaces(store: Store) -> None:
    _create_space(store, "alpha")
    _create_space(store, "beta")
    alpha = _create(store, "alpha", {name: text for name, (text, _) in CORPUS.items()})
    before = _search(store, "alpha", "heron river otter")
    assert len(before) == 5

    # Another tenant's documents full of the query's words would make them common, lowering their weight.
    _create(store, "beta", {f"b{n}": f"heron river otter report {n}" for n in range(200)})
    beta = _create(store, "beta", {"a": CORPUS["a"][0]})

    assert _search(store, "alpha", "heron river otter") == before
    # The same text scores by its own space's statistics.
    beta_scores = dict(_search(store, "beta", "heron river otter", limit=300))
    assert len(beta_scores) == 201
    assert beta_scores[_label(beta["a"])] != pytest.approx(dict(before)[_label(alpha["a"])])
    _statistics_hold(store, "alpha")
    _statistics_hold(store, "beta")


def test_removed_replaced_and_expired_cubes_leave_and_new_versions_are_found(store: Store) -> None:
    _create_space(store, "notes")
    cubes = EmbeddedCubeStore(store)
    rows = _create(store, "notes", {"heron": "the heron waits", "otter": "the otter dives", "crane": "a crane"})
    expiring = _row(store, "notes", "kite", "the kite hovers", expire=NOW + timedelta(hours=1))
    cubes.write(lambda write: write.create([expiring]), NOW)
    assert _labels(store, "notes", "waits dives crane hovers") != []

    # A new version with a new vector: the old label's document goes, the new one's text is found.
    moved = _row(store, "notes", "heron", "the heron flies off")
    next_version(moved.cube, 1, NOW)
    cubes.write(lambda write: write.replace(moved, rows["heron"].vec_id), NOW)
    assert _labels(store, "notes", "waits") == []
    assert _labels(store, "notes", "flies") == [moved.vec_id]
    # A new version keeping its vector and label, with new text: the label's document is the new text.
    reworded = CubeRow("notes", "otter", cube_pb2.MemCube(), rows["otter"].vec_id, rows["otter"].embedding)
    reworded.cube.CopyFrom(rows["otter"].cube)
    reworded.cube.plaintext.text = "the otter swims"
    next_version(reworded.cube, 1, NOW)
    cubes.write(lambda write: write.replace(reworded, reworded.vec_id), NOW)
    assert _labels(store, "notes", "dives") == []
    assert _labels(store, "notes", "swims") == [reworded.vec_id]
    # A new version that leaves the text as it was (a lifecycle change) keeps the document.
    archived = CubeRow("notes", "otter", cube_pb2.MemCube(), reworded.vec_id, reworded.embedding)
    archived.cube.CopyFrom(reworded.cube)
    archived.cube.state = cube_pb2.LIFECYCLE_STATE_ARCHIVED
    next_version(archived.cube, 2, NOW)
    cubes.write(lambda write: write.replace(archived, archived.vec_id, reindex=False), NOW)
    assert _labels(store, "notes", "swims") == [reworded.vec_id]

    cubes.write(lambda write: write.remove("notes", ["crane"]), NOW)
    assert _labels(store, "notes", "crane") == []
    cubes.write(lambda write: write.expire("notes", ["kite"], timedelta(days=1)), NOW + timedelta(hours=2))
    assert _labels(store, "notes", "hovers") == []

    assert sorted(_labels(store, "notes", "heron otter kite crane")) == sorted([_label(moved), _label(reworded)])
    assert _rows_of(store, "notes")["lexical_docs"] == 2
    _statistics_hold(store, "notes")


def test_a_removed_space_leaves_no_lexical_rows(store: Store) -> None:
    _create_space(store, "gone")
    _create_space(store, "kept")
    _create(store, "gone", {"a": "heron river", "b": "otter river"})
    _create(store, "kept", {"a": "heron river"})
    assert all(_rows_of(store, "gone").values())

    EmbeddedCubeStore(store).write(lambda write: write.remove_space("gone"), NOW)

    assert _rows_of(store, "gone") == dict.fromkeys(LEXICAL_TABLES, 0)
    assert _search(store, "gone", "river") == []
    assert len(_search(store, "kept", "river")) == 1
    _statistics_hold(store, "kept")


class Refused(Exception):
    """Raised by a write's change after it wrote its cubes, so the transaction rolls back."""


def test_a_write_that_rolls_back_leaves_no_lexical_rows(store: Store) -> None:
    _create_space(store, "notes")
    row = _row(store, "notes", "heron", "the heron waits")

    def create_then_fail(write: CubeWrite) -> None:
        write.create([row])
        raise Refused

    with pytest.raises(Refused):
        EmbeddedCubeStore(store).write(create_then_fail, NOW)

    assert _rows_of(store, "notes") == dict.fromkeys(LEXICAL_TABLES, 0)
    assert _search(store, "notes", "heron") == []


def test_a_second_server_finds_a_document_when_the_write_returns(store: Store, tmp_path: Path, url: str) -> None:
    second = _open(tmp_path / "b", url)
    try:
        # The second server's follower is never started: the search reads the database, not its memory.
        _create_space(store, "notes")
        rows = _create(store, "notes", {"heron": "the heron waits"})
        assert _labels(second, "notes", "heron") == [rows["heron"].vec_id]
        EmbeddedCubeStore(store).write(lambda write: write.remove("notes", ["heron"]), NOW)
        assert _labels(second, "notes", "heron") == []
        # Either server's write is the other's document.
        more = _create(second, "notes", {"otter": "the otter dives"})
        assert _labels(store, "notes", "otter") == [more["otter"].vec_id]
    finally:
        second.close()


def test_a_huge_text_is_indexed_up_to_the_bound(store: Store) -> None:
    _create_space(store, "notes")
    # Distinct short words make the largest tsvector per byte of text; 10 MB of them would overflow it.
    words = [f"{a}{b}{c}" for a in "bcdfghjklmnpqrstvwxz" for b in "aeiou" for c in "bcdfghjklmnpqrstvwxz"]
    head = " ".join(words)
    huge = head + " " + "zebrafish " * 1_000_000 + "\x00 quokka"
    assert len(huge.encode()) > 10_000_000 > TEXT_BYTES
    rows = _create(store, "notes", {"huge": huge, "small": "a quokka"})

    assert _labels(store, "notes", "bab") == [rows["huge"].vec_id]
    # Words past the bound are not in the document.
    assert _labels(store, "notes", "quokka") == [rows["small"].vec_id]
    with store.database.read() as cursor:
        found = cursor.execute("SELECT length FROM lexical_docs WHERE label = ?", [rows["huge"].vec_id]).fetchone()
    assert found is not None and 0 < int(found[0]) <= TEXT_BYTES // 2
    _statistics_hold(store, "notes")


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("plain", "plain"),
        ("nul\x00inside", "nul inside"),
        ("é" * TEXT_BYTES, "é" * (TEXT_BYTES // 2)),  # two bytes each: cut at a character
        ("x" * (TEXT_BYTES + 1), "x" * TEXT_BYTES),
    ],
)
def test_the_indexed_text_is_bounded_and_holds_no_nul(text: str, kept: str) -> None:
    assert indexed_text(text) == kept


def test_cubes_stored_before_the_documents_get_them_at_the_next_opening(tmp_path: Path, url: str) -> None:
    # A database of the schema before migration 0004, with cubes written as that release wrote them.
    with psycopg.connect(**connection_options(url)) as connection:
        migrate(connection, target=3)
        vector_type.register(connection)
        with connection.transaction():
            writing = PgCursor(connection.cursor())
            insert_space(writing, "notes", space_pb2.Space(name="spaces/notes"), NOW, "principals/ada")
            vector = np.ones(DIMENSION, dtype=np.float32) / np.sqrt(DIMENSION)
            texts = {"heron": "the heron waits", "otter": "the otter dives", "blank": ""}
            insert_rows(
                writing,
                [
                    CubeRow("notes", cube_id, _plain(f"spaces/notes/cubes/{cube_id}", text), label, vector)
                    for label, (cube_id, text) in enumerate(texts.items(), start=1)
                ],
            )
            writing.execute("SELECT setval('vec_ids', 10)")

    opened = _open(tmp_path / "a", url)
    try:
        assert _labels(opened, "notes", "heron") == [1]
        assert _labels(opened, "notes", "otter") == [2]
        assert _rows_of(opened, "notes")["lexical_docs"] == 2
        _statistics_hold(opened, "notes")
        with opened.database.read() as cursor:
            assert cursor.execute("SELECT 1 FROM meta WHERE key = ?", [PENDING]).fetchone() is None
    finally:
        opened.close()


def test_a_new_database_has_nothing_pending(store: Store) -> None:
    with store.database.read() as cursor:
        assert cursor.execute("SELECT 1 FROM meta WHERE key = ?", [PENDING]).fetchone() is None


def _plain(name: str, text: str) -> cube_pb2.MemCube:
    cube = cube_pb2.MemCube(name=name, type=cube_pb2.MEMORY_TYPE_PLAINTEXT)
    cube.plaintext.text = text
    cube.create_time.FromDatetime(NOW)
    next_version(cube, 0, NOW)
    return cube
