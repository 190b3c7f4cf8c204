"""LoCoMo retrieval benchmark: how well Recall finds the dialog turns a question's answer rests on.

Run by hand, never in the test suite::

    .venv/bin/python bench/locomo.py                       # all 10 conversations, hybrid (a few minutes)
    .venv/bin/python bench/locomo.py --mode dense          # or lexical; compare the three
    .venv/bin/python bench/locomo.py --conversations 1     # quick check

A real server runs as a child process with the packaged all-MiniLM-L6-v2 embedder. Each conversation
becomes a space and each dialog turn a plaintext cube: its text "[session date] speaker: text" (plus
"[image: caption]" when the turn shares an image), its search context the two turns before and after it
in its session (``--context-turns``; searched lexically, not embedded), its dia_id, speaker, session and
session date as labels; all through gRPC (BatchCreateCubes). Every question outside category 5
(adversarial) goes through SchedulerService.Recall; the plan's order is the ranking. A question's R@k is
the fraction of its evidence turns among the top k; the table averages it per category and overall, as
in the LoCoMo paper (Maharana et al., ACL 2024), whose DRAGON row is printed for comparison. Recall
records usage and recency, which would favour turns that earlier questions retrieved, so by default the
server runs with only the relevance weight (``--default-weights`` keeps the server's own).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from _server import Target, start_server
from tqdm import tqdm

from memos_grpc._proto.memos.v1 import (
    cube_pb2,
    governance_service_pb2,
    governance_service_pb2_grpc,
    scheduler_service_pb2,
    scheduler_service_pb2_grpc,
    vault_service_pb2,
    vault_service_pb2_grpc,
)

DATA = Path("/work/shared/data/locomo/locomo10.json")
EMBEDDER = "all-MiniLM-L6-v2"
KS = (5, 10, 25, 50)
DRAGON = (58.8, 67.5, 79.9, 84.8)  # the paper's Table 3, DRAGON over dialog turns
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
ADVERSARIAL = 5
ONLY_RELEVANCE = {f"MEMOS_RECALL_WEIGHT_{part}": "0" for part in ("USAGE", "RECENCY", "PRIORITY")}
MODES = {
    "dense": vault_service_pb2.SEARCH_MODE_DENSE,
    "lexical": vault_service_pb2.SEARCH_MODE_LEXICAL,
    "hybrid": vault_service_pb2.SEARCH_MODE_HYBRID,
}
DIA_ID = re.compile(r"D(\d+):(\d+)")
SESSION = re.compile(r"session_(\d+)")
BATCH = 500
LABEL_MAX = 256

DiaId = tuple[int, int]


@dataclass
class Conversation:
    space_id: str
    cubes: list[vault_service_pb2.CreateCubeRequest] = field(default_factory=list)
    turns: set[DiaId] = field(default_factory=set)
    questions: list[tuple[str, int, frozenset[DiaId]]] = field(default_factory=list)  # text, category, evidence


@dataclass
class Counts:
    """Quirks of the data met while loading, reported with the results."""

    malformed_ids: list[str] = field(default_factory=list)
    empty_evidence: int = 0
    evidence_not_a_turn: int = 0
    adversarial: int = 0


def parse_dia_ids(raw: Iterable[object], counts: Counts) -> frozenset[DiaId]:
    """Evidence ids as (session, turn): lists split on ';' and spaces, zero padding ignored, malformed ones dropped."""
    ids = set()
    for item in raw:
        for token in re.split(r"[;\s]+", str(item).strip()):
            if match := DIA_ID.fullmatch(token):
                ids.add((int(match[1]), int(match[2])))
            elif token:
                counts.malformed_ids.append(token)
    return frozenset(ids)


def utterance(turn: dict[str, Any]) -> str:
    """A turn as read: "speaker: text", plus " [image: caption]" when it shares an image."""
    text = f"{turn['speaker']}: {turn['text']}"
    if turn.get("blip_caption"):
        text += f" [image: {turn['blip_caption']}]"
    return text


def cube_request(
    dialog: list[dict[str, Any]], position: int, session: int, date: str, window: int, dated: bool
) -> vault_service_pb2.CreateCubeRequest:
    """One dialog turn as a plaintext cube, metadata as labels.

    The text is the turn, after its session's date when ``dated`` (the memory says when it was said); the
    search context is the ``window`` turns before and after it in its session.
    """
    turn = dialog[position]
    text = f"[{date}] {utterance(turn)}" if dated and date else utterance(turn)
    around = dialog[max(0, position - window) : position] + dialog[position + 1 : position + 1 + window]
    context = "\n".join(utterance(t) for t in around) if window else ""
    labels = {"dia_id": turn["dia_id"], "speaker": turn["speaker"], "session": str(session), "session_date": date}
    cube = cube_pb2.MemCube(
        plaintext=cube_pb2.PlaintextPayload(text=text, context=context),
        labels={key: str(value)[:LABEL_MAX] for key, value in labels.items()},
        semantic_type=cube_pb2.SEMANTIC_TYPE_DIALOGUE,
        source=cube_pb2.SOURCE_USER_INPUT,
    )
    return vault_service_pb2.CreateCubeRequest(cube=cube)


def load(path: Path, limit: int | None, window: int, dated: bool) -> tuple[list[Conversation], Counts]:
    counts = Counts()
    conversations = []
    for n, sample in enumerate(json.loads(path.read_text())[:limit]):
        conversation = Conversation(space_id=f"locomo-{n}")
        dialog = sample["conversation"]
        sessions = sorted((int(m[1]), key) for key in dialog if (m := SESSION.fullmatch(key)))
        for session, key in sessions:
            date = dialog.get(f"{key}_date_time", "")
            for position, turn in enumerate(dialog[key]):
                conversation.cubes.append(cube_request(dialog[key], position, session, date, window, dated))
                conversation.turns |= parse_dia_ids([turn["dia_id"]], counts)
        for qa in sample["qa"]:
            if qa["category"] == ADVERSARIAL:
                counts.adversarial += 1
                continue
            evidence = parse_dia_ids(qa["evidence"], counts)
            counts.evidence_not_a_turn += len(evidence - conversation.turns)
            if evidence:
                conversation.questions.append((qa["question"], qa["category"], evidence))
            else:
                counts.empty_evidence += 1
        conversations.append(conversation)
    return conversations, counts


def ingest(channel: grpc.Channel, target: Target, conversations: list[Conversation]) -> dict[str, Any]:
    """A space per conversation, its turns in batches; waits until the last cube is found lexically too."""
    governance = governance_service_pb2_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
    vault = vault_service_pb2_grpc.VaultServiceStub(channel)  # type: ignore[no-untyped-call]
    total = sum(len(c.cubes) for c in conversations)
    bar = tqdm(total=total, desc="ingest", unit="cube", file=sys.stderr)
    started = time.perf_counter()
    for conversation in conversations:
        parent = f"spaces/{conversation.space_id}"
        space = governance_service_pb2.CreateSpaceRequest(space_id=conversation.space_id)
        governance.CreateSpace(space, metadata=target.metadata)
        for lo in range(0, len(conversation.cubes), BATCH):
            batch = conversation.cubes[lo : lo + BATCH]
            request = vault_service_pb2.BatchCreateCubesRequest(parent=parent, requests=batch)
            vault.BatchCreateCubes(request, timeout=600, metadata=target.metadata)
            bar.update(len(batch))
    seconds = time.perf_counter() - started
    bar.close()
    last = conversations[-1].cubes[-1].cube
    probe = vault_service_pb2.SearchCubesRequest(
        parent=f"spaces/{conversations[-1].space_id}",
        text=last.plaintext.text,
        mode=MODES["lexical"],
        top_k=1,
        filter=f"labels.dia_id = {json.dumps(last.labels['dia_id'])}",
    )
    deadline = time.monotonic() + 60
    while not vault.SearchCubes(probe, timeout=60, metadata=target.metadata).results:
        if time.monotonic() > deadline:  # BM25 sees new cubes within lexical_refresh_seconds
            raise RuntimeError("the last ingested cube is not found lexically after 60 s")
        time.sleep(0.1)
    searchable = time.perf_counter() - started
    return {"cubes": total, "seconds": seconds, "cubes_per_s": total / seconds, "lexically_searchable_s": searchable}


def ask(
    channel: grpc.Channel, target: Target, conversations: list[Conversation], args: argparse.Namespace
) -> dict[str, Any]:
    """Recalls every question; per question its category, evidence size, and hits at each k."""
    scheduler = scheduler_service_pb2_grpc.SchedulerServiceStub(channel)  # type: ignore[no-untyped-call]
    bar = tqdm(total=sum(len(c.questions) for c in conversations), desc="recall", unit="q", file=sys.stderr)
    rows, latencies, short_plans, over_budget = [], [], 0, 0
    started = time.perf_counter()
    for conversation in conversations:
        for text, category, evidence in conversation.questions:
            request = scheduler_service_pb2.RecallRequest(
                parent=f"spaces/{conversation.space_id}",
                query=text,
                token_budget=args.token_budget,
                max_items=max(KS),
                mode=MODES[args.mode],
            )
            t0 = time.perf_counter()
            plan = scheduler.Recall(request, timeout=60, metadata=target.metadata)
            latencies.append(time.perf_counter() - t0)
            ranking = [next(iter(parse_dia_ids([i.cube.labels["dia_id"]], Counts())), None) for i in plan.items]
            short_plans += len(plan.items) < max(KS)
            over_budget += plan.over_budget_count
            hits = {k: len(evidence & set(ranking[:k])) for k in KS}
            rows.append({"category": category, "evidence": len(evidence), "hits": hits, "ms": latencies[-1] * 1000})
            bar.update()
    seconds = time.perf_counter() - started
    bar.close()
    ms = np.asarray(latencies) * 1000
    timing = {"seconds": seconds, "recalls_per_s": len(rows) / seconds}
    timing |= {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}
    return {"questions": rows, "timing": timing, "plans_under_50_items": short_plans, "over_budget_items": over_budget}


def recall_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean R@k in percent, per category and overall (each question weighs the same)."""

    def mean(selected: list[dict[str, Any]]) -> dict[str, Any]:
        scores = {f"R@{k}": 100 * float(np.mean([r["hits"][k] / r["evidence"] for r in selected])) for k in KS}
        return {"n": len(selected)} | scores

    table = {
        f"{c} {CATEGORIES.get(c, '?')}": mean([r for r in rows if r["category"] == c])
        for c in sorted({r["category"] for r in rows})
    }
    return table | {"overall": mean(rows)}


def report(results: dict[str, Any]) -> None:
    config, counts, ingest_r, asked = results["config"], results["data"], results["ingest"], results["recall"]
    print(f"\nconfig: mode {config['mode']}, embedder {EMBEDDER}, {config['weights']}")
    print(
        f"        recall_max_candidates {config['recall_max_candidates']}, token_budget {config['token_budget']}, "
        f"max_items {max(KS)}; {config['conversations']} conversations"
    )
    print(
        f"data: {ingest_r['cubes']} turns; {counts['questions']} questions scored, {counts['adversarial']} adversarial "
        f"left out, {counts['empty_evidence']} with no evidence skipped; evidence ids malformed (dropped) "
        f"{counts['malformed_ids']}, naming no turn {counts['evidence_not_a_turn']}"
    )
    print(
        f"ingest: {ingest_r['seconds']:.1f} s, {ingest_r['cubes_per_s']:.0f} cubes/s "
        f"(lexically searchable after {ingest_r['lexically_searchable_s']:.1f} s)"
    )
    t = asked["timing"]
    print(
        f"recall: {t['seconds']:.1f} s, {t['recalls_per_s']:.1f} recalls/s, p50 {t['p50_ms']:.1f} ms, "
        f"p95 {t['p95_ms']:.1f} ms; plans under {max(KS)} items {asked['plans_under_50_items']}, "
        f"items over budget {asked['over_budget_items']}"
    )
    print(f"wall time: {results['wall_s']:.1f} s\n")
    print(f"{'category':<26} {'n':>5}" + "".join(f"{'R@' + str(k):>7}" for k in KS))
    for name, row in results["table"].items():
        print(f"{name:<26} {row['n']:>5}" + "".join(f"{row[f'R@{k}']:>7.1f}" for k in KS))
    print(f"{'DRAGON (paper, 50 conv.)':<26} {'':>5}" + "".join(f"{v:>7.1f}" for v in DRAGON))
    overall = results["table"]["overall"]
    print("overall " + " ".join(f"R@{k}={overall[f'R@{k}']:.1f}" for k in KS))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help=f"locomo10.json (default {DATA})")
    parser.add_argument("--conversations", type=int, help="only the first N conversations")
    parser.add_argument("--mode", choices=MODES, default="hybrid", help="Recall's SearchMode (default hybrid)")
    parser.add_argument(
        "--context-turns", type=int, default=2, help="turns before and after each turn in its search context (0: none)"
    )
    parser.add_argument("--undated", action="store_true", help="leave the session date out of the turn's text")
    parser.add_argument("--default-weights", action="store_true", help="keep the server's recall weights")
    parser.add_argument("--dense-weight", type=float, help="MEMOS_HYBRID_DENSE_WEIGHT (default: the server's)")
    parser.add_argument("--recall-max-candidates", type=int, default=100, help="MEMOS_RECALL_MAX_CANDIDATES")
    parser.add_argument("--token-budget", type=int, default=100_000, help="RecallRequest.token_budget")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's temp data directory and log")
    args = parser.parse_args(argv)

    wall = time.perf_counter()
    if args.context_turns < 0:
        parser.error("--context-turns must not be negative")
    conversations, counts = load(args.data, args.conversations, args.context_turns, not args.undated)
    # The child server inherits this process's environment (bench/_server.py).
    os.environ["MEMOS_RECALL_MAX_CANDIDATES"] = str(args.recall_max_candidates)
    if args.dense_weight is not None:
        os.environ["MEMOS_HYBRID_DENSE_WEIGHT"] = str(args.dense_weight)
    weights = "server's default recall weights" if args.default_weights else "recall weights: relevance only"
    if not args.default_weights:
        os.environ.update(ONLY_RELEVANCE)
        weights += " (" + " ".join(f"{k}={v}" for k, v in ONLY_RELEVANCE.items()) + ")"
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    config |= {"weights": weights, "conversations": len(conversations), "embedder": EMBEDDER}
    data = vars(counts) | {"questions": sum(len(c.questions) for c in conversations)}
    print(f"{weights}; mode {args.mode}; recall_max_candidates {args.recall_max_candidates}", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="memos-locomo-"))
    proc = None
    try:
        proc, target = start_server(tmp / "data", 384, tmp / "server.log", embedder=EMBEDDER)
        with grpc.insecure_channel(target.address) as channel:
            ingested = ingest(channel, target, conversations)
            asked = ask(channel, target, conversations, args)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()
        log = tmp / "server.log"
        print(log.read_text()[-4000:] if log.exists() else "(no server log)", file=sys.stderr)
        raise
    finally:
        if args.keep_data:
            print(f"server data and log kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    results: dict[str, Any] = {"config": config, "data": data, "ingest": ingested, "recall": asked}
    results |= {"table": recall_table(asked["questions"]), "wall_s": time.perf_counter() - wall}
    results["dragon"] = dict(zip((f"R@{k}" for k in KS), DRAGON, strict=True))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
