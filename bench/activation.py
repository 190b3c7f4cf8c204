"""Activation-memory benchmark: time to first token with N memory tokens as plaintext versus as a stored KV cache.

Run by hand, never in the test suite::

    .venv/bin/python bench/activation.py                              # N = 256, 1024, 4096 (a few minutes)
    .venv/bin/python bench/activation.py --sizes 256 --repeats 3      # smoke run, well under a minute
    .venv/bin/python bench/activation.py --server                     # and the same work through a server

A small Llama model (grouped-query attention) is built from a config with a fixed seed, saved as
safetensors and loaded back the way the server loads a model directory, on the CPU in float32, and
fingerprinted with the project's ``model_fingerprint``. For each N the memory is N random token ids and
the question Q more (seeded), so the token counts are exact. Two ways to get the first answer token:

* plaintext: one forward pass over memory + question, then the argmax of the last position's logits.
  Only that position goes through the output layer (``logits_to_keep=1``, as ``generate`` does).
* KV cache: the memory's cache is computed once beforehand (not timed), encoded with ``encode_cache`` and
  written to a file, which is what the vault stores. Timed: read the file, ``decode_cache`` (which
  validates the header against the model), ``forward_with_cache`` over the question, the argmax.
  The file is in the page cache by then, so this is a warm read.

Once per N (the warm-up) the two first-token logits must agree, or the run stops. Then each of
``--repeats`` rounds times both paths back to back, alternating which goes first. Only ratios within
one run mean much: the machine may be shared.

The model directory also holds a word-level tokenizer over the words ``w0`` .. ``w{vocab-1}``, so the text
``" ".join(f"w{i}" for i in ids)`` encodes to exactly those ids: the server reads the same N tokens.

With ``--server`` a second phase starts a server as a child process (``MEMOS_MODEL_DIR`` the model
directory, ``MEMOS_EMBEDDER=none``, torch threads as ``--threads``) and measures what it costs over the
library it runs, on the same model and texts:

* activation, for each N: the library's ``ModelHost.compute_cache`` plus writing the blob to a file,
  against CreateCube (plaintext) then ``TransformCube`` to ACTIVATION, timed from the call until
  ``WatchOperation`` reports it done. The operation's timestamps split the server's time into accepting
  and queueing, the model, storing the blob and committing the cube, and recording the end. Then
  ``ReadPayload`` of the blob against reading the library's file (both warm). A fresh cube per round.
* parametric: one ``TransformCube`` of ``--train-cubes`` cubes of ``--train-tokens`` tokens with
  ``training.steps`` = ``--train-steps``, against ``train_adapter`` in this process on the same texts and
  plan (seed, rank 8, learning rate 1e-3 rounded to 32 bits as the request carries it, the model's default
  target modules).

This file holds the arguments, the time-to-first-token phase, the report and ``main``. The server phase and
its tables are in ``_activation_server.py``; what both phases use (the seeded token ids, the word-level text,
the timing summary, the table printer) is in ``_activation_common.py``.
"""

from __future__ import annotations

import os

# Before torch is imported (memos_grpc imports it): with OpenMP's default active wait, the threads of every
# parallel region spin, and stall whenever another process holds a core (see docs/performance.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import importlib.metadata
import itertools
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _activation_common import MB, memory_ids, summary, table, word_tokenizer
from _activation_server import report_server, server_phase
from _server import ROOT
from transformers import AutoModelForCausalLM, DynamicCache, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from memos_grpc.models.activation import CacheSpec, decode_cache, encode_cache
from memos_grpc.models.fingerprint import model_fingerprint
from memos_grpc.models.kv import forward_with_cache


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="256,1024,4096", help="memory token counts N, comma-separated")
    parser.add_argument("--question-tokens", type=int, default=32, help="question tokens Q read after the memory")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per N, after one warm-up round")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (torch.set_num_threads)")
    parser.add_argument("--hidden", type=int, default=512, help="hidden size")
    parser.add_argument("--layers", type=int, default=8, help="decoder layers")
    parser.add_argument("--heads", type=int, default=8, help="attention heads")
    parser.add_argument("--kv-heads", type=int, default=4, help="key/value heads (grouped-query attention)")
    parser.add_argument("--intermediate", type=int, default=1408, help="MLP intermediate size")
    parser.add_argument("--vocab", type=int, default=32000, help="vocabulary size")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest allowed difference of first-token logits")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the token ids")
    parser.add_argument("--json", type=Path, help="also write every number (and the machine description) here")
    parser.add_argument("--server", action="store_true", help="also measure the same work through a child server")
    parser.add_argument("--skip-ttft", action="store_true", help="skip the time-to-first-token phase (with --server)")
    parser.add_argument("--server-sizes", help="memory token counts of the server phase (default: --sizes)")
    parser.add_argument("--server-repeats", type=int, default=5, help="timed rounds per N of the server phase")
    parser.add_argument("--train-cubes", type=int, default=8, help="cubes of the parametric transform")
    parser.add_argument("--train-tokens", type=int, default=64, help="tokens of each of those cubes")
    parser.add_argument("--train-steps", type=int, default=50, help="training.steps of the parametric transform")
    args = parser.parse_args(argv)
    args.sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    args.server_sizes = [int(n) for n in args.server_sizes.split(",") if n.strip()] if args.server_sizes else args.sizes
    if not args.sizes or min(args.sizes) < 1 or args.question_tokens < 1 or args.repeats < 1:
        parser.error("--sizes, --question-tokens and --repeats must be positive")
    if args.skip_ttft and not args.server:
        parser.error("--skip-ttft leaves nothing to run without --server")
    counts = (args.server_repeats, args.train_cubes, args.train_tokens - 1, args.train_steps)
    if args.server and (not args.server_sizes or min(args.server_sizes) < 1 or min(counts) < 1):
        parser.error("--server-sizes, --server-repeats, --train-cubes and --train-steps must be positive")
    return args


def build_model(args: argparse.Namespace, directory: Path) -> tuple[PreTrainedModel, str, dict[str, Any]]:
    """The model saved to ``directory`` and loaded back from it, its fingerprint and a description."""
    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=max(args.sizes + args.server_sizes + [args.train_tokens]) + args.question_tokens,
    )
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    word_tokenizer(args.vocab).save_pretrained(directory)  # fingerprinted with the weights, as a server's model is
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, device_map="cpu")
    model.eval()
    fingerprint = model_fingerprint(directory)
    weights = sum(path.stat().st_size for path in directory.glob("*.safetensors"))
    info = {
        "config": {
            "hidden_size": args.hidden,
            "num_hidden_layers": args.layers,
            "num_attention_heads": args.heads,
            "num_key_value_heads": args.kv_heads,
            "head_dim": args.hidden // args.heads,
            "intermediate_size": args.intermediate,
            "vocab_size": args.vocab,
            "max_position_embeddings": config.max_position_embeddings,
            "tie_word_embeddings": bool(config.tie_word_embeddings),
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_mb": weights / MB,
        "dtype": str(model.dtype),
        "attn_implementation": model.config._attn_implementation,
        "fingerprint": fingerprint,
    }
    return model, fingerprint, info


def plaintext_ttft(model: PreTrainedModel, ids: torch.Tensor) -> tuple[float, torch.Tensor, int]:
    """Seconds to the first token reading memory + question in one pass, its logits, and the token."""
    start = time.perf_counter()
    with torch.no_grad():
        # A fresh cache is filled as generation would need it for the tokens after the first.
        output = model(input_ids=ids, cache=DynamicCache(), use_cache=True, logits_to_keep=1)
    logits = output.logits[0, -1]
    token = int(logits.argmax())
    return time.perf_counter() - start, logits, token


def cache_ttft(
    model: PreTrainedModel, spec: CacheSpec, path: Path, question: torch.Tensor
) -> tuple[float, float, torch.Tensor, int]:
    """Seconds to the first token from the stored cache, of which reading and decoding it, its logits, the token."""
    start = time.perf_counter()
    cache = decode_cache(path.read_bytes(), spec)
    decoded = time.perf_counter()
    logits = forward_with_cache(model, cache, question)[0, -1]
    token = int(logits.argmax())
    return time.perf_counter() - start, decoded - start, logits, token


def measure(
    model: PreTrainedModel, fingerprint: str, spec: CacheSpec, n: int, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    memory, question = memory_ids(args, n)
    full = torch.cat([memory, question], dim=1)

    prepared = time.perf_counter()
    stored = DynamicCache()
    forward_with_cache(model, stored, memory)  # the cache a vault write of these N tokens would hold
    blob = encode_cache(stored, fingerprint, n)
    del stored
    path = tmp / f"memory-{n}.safetensors"
    path.write_bytes(blob)
    prepare_s = time.perf_counter() - prepared

    # Warm-up round, which is also the correctness check.
    _, plain_logits, plain_token = plaintext_ttft(model, full)
    _, _, cached_logits, cached_token = cache_ttft(model, spec, path, question)
    max_diff = float((plain_logits - cached_logits).abs().max())
    if cached_token != plain_token or not torch.allclose(plain_logits, cached_logits, rtol=0.0, atol=args.atol):
        raise SystemExit(
            f"N={n}: the paths disagree: first token {plain_token} (plaintext) vs {cached_token} (cache), "
            f"largest logit difference {max_diff:.3g} (allowed {args.atol:g})"
        )

    plain: list[float] = []
    cached: list[float] = []
    decode: list[float] = []

    def run_plain() -> None:
        seconds, _, token = plaintext_ttft(model, full)
        assert token == plain_token
        plain.append(seconds)

    def run_cached() -> None:
        seconds, decode_s, _, token = cache_ttft(model, spec, path, question)
        assert token == plain_token
        cached.append(seconds)
        decode.append(decode_s)

    order: list[Callable[[], None]] = [run_plain, run_cached]
    for _ in range(args.repeats):
        for step in order:
            step()
        order.reverse()  # so neither path always runs right after the other
        print(f"  N={n}: round {len(plain)}/{args.repeats}", file=sys.stderr, flush=True)

    result: dict[str, Any] = {"n": n, "question_tokens": args.question_tokens, "blob_mb": len(blob) / MB}
    result |= {"prepare_s": prepare_s, "max_logit_diff": max_diff, "first_token": plain_token}
    result |= {"plaintext": summary(plain), "cache": summary(cached), "decode": summary(decode)}
    result["samples_s"] = {"plaintext": plain, "cache": cached, "decode": decode}
    ratio = result["cache"]["median_ms"] / result["plaintext"]["median_ms"]
    result |= {"ratio": ratio, "lower_pct": 100 * (1 - ratio)}
    path.unlink()
    return result


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    versions = {p: importlib.metadata.version(p) for p in ("torch", "transformers", "safetensors")}
    git = [["git", "-C", str(ROOT), *c] for c in (["rev-parse", "--short", "HEAD"], ["status", "-s", "memos_grpc"])]
    try:
        commit, dirty = (subprocess.run(c, capture_output=True, text=True).stdout.strip() for c in git)  # read-only
    except OSError:
        commit, dirty = "?", ""
    info: dict[str, Any] = {"code": (commit or "?") + (" + uncommitted changes to memos_grpc" if dirty else "")}
    info |= {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}
    info |= {"torch_threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    return info | versions


def report(results: dict[str, Any]) -> None:
    m, model = results["machine"], results["model"]
    c = model["config"]
    print(
        f"\nmachine: {m['nproc']} cores, {m['cpu']}; torch {m['torch']} ({m['torch_threads']} threads, "
        f"OMP_WAIT_POLICY={m['omp_wait_policy']}), transformers {m['transformers']}; code {m['code']}"
    )
    start, end = (", ".join(f"{x:.2f}" for x in results[k]) for k in ("loadavg_at_start", "loadavg_at_end"))
    print(f"load average: start {start}, end {end}")
    print(
        f"model: Llama, {c['num_hidden_layers']} layers, hidden {c['hidden_size']}, {c['num_attention_heads']} heads "
        f"({c['num_key_value_heads']} KV, head_dim {c['head_dim']}), intermediate {c['intermediate_size']}, "
        f"vocab {c['vocab_size']}; {model['parameters'] / 1e6:.1f} M parameters, {model['weights_mb']:.1f} MB "
        f"of {model['dtype']} safetensors; attention {model['attn_implementation']}"
    )
    if results["runs"]:
        report_ttft(results)
    if "server" in results:
        report_server(results["server"])


def report_ttft(results: dict[str, Any]) -> None:
    q = results["runs"][0]["question_tokens"]
    print(f"question {q} tokens; {results['repeats']} timed rounds per N; ms as median (min-max)\n")
    head = ("N", "plaintext TTFT", "cache TTFT (incl. load)", "read+decode", "blob MB", "cache/plain", "lower")
    rows: list[tuple[str, ...]] = [head]
    for r in results["runs"]:
        p, k, d = r["plaintext"], r["cache"], r["decode"]
        rows.append(
            (
                str(r["n"]),
                f"{p['median_ms']:.1f} ({p['min_ms']:.1f}-{p['max_ms']:.1f})",
                f"{k['median_ms']:.1f} ({k['min_ms']:.1f}-{k['max_ms']:.1f})",
                f"{d['median_ms']:.1f} ({d['min_ms']:.1f}-{d['max_ms']:.1f})",
                f"{r['blob_mb']:.1f}",
                f"{r['ratio']:.3f}",
                f"{r['lower_pct']:.1f} %",
            )
        )
    table(rows)
    diffs = ", ".join(f"N={r['n']}: {r['max_logit_diff']:.2g}" for r in results["runs"])
    print(f"\nlargest first-token logit difference between the paths: {diffs}")
    runs = results["runs"]
    for before, after in itertools.pairwise(runs):
        growth = after["n"] / before["n"]
        plain = after["plaintext"]["median_ms"] / before["plaintext"]["median_ms"]
        cache = after["cache"]["median_ms"] / before["cache"]["median_ms"]
        decode = after["decode"]["median_ms"] / before["decode"]["median_ms"]
        print(
            f"N x{growth:g} ({before['n']} -> {after['n']}): plaintext x{plain:.2f}, cache x{cache:.2f}, "
            f"read+decode x{decode:.2f}"
        )
    summary_line = "; ".join(f"N={r['n']} ratio={r['ratio']:.3f} lower={r['lower_pct']:.1f}%" for r in runs)
    print(summary_line)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"machine": machine(), "loadavg_at_start": os.getloadavg(), "repeats": args.repeats}
    with tempfile.TemporaryDirectory(prefix="activation-bench-") as name:
        tmp = Path(name)
        model_dir = tmp / "model"
        model, fingerprint, info = build_model(args, model_dir)
        spec = CacheSpec.for_model(model, fingerprint)
        results["model"] = info
        results["runs"] = []
        for n in [] if args.skip_ttft else args.sizes:
            print(f"N={n}: preparing the stored cache", file=sys.stderr, flush=True)
            results["runs"].append(measure(model, fingerprint, spec, n, args, tmp))
        del model
        if args.server:
            print("server phase: starting a server with the model", file=sys.stderr, flush=True)
            results["server"] = server_phase(args, model_dir, fingerprint, tmp)
    results["loadavg_at_end"] = os.getloadavg()
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
