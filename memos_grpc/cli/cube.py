"""``memos-grpc cube``: add, get, list, search and delete MemCubes on a running server.

``cube add --file`` loads a JSON-lines file (or plain text, one memory per
line) with batched creates and a progress bar. Every subcommand takes ``--json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import sys
from typing import Any

from memos_client import Cube, CubeDraft, MemosClient, SemanticType

from memos_grpc.cli._connect import (
    common_options,
    labels_of,
    message_dict,
    parse_label,
    preview,
    print_json,
    run,
)

_SEMANTIC_TYPES = [t.value for t in SemanticType if t is not SemanticType.UNSPECIFIED]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``cube`` and its subcommands to the ``memos-grpc`` parser."""
    common = common_options()
    cube = commands.add_parser("cube", help="manage memory cubes", description="Manage memory cubes.")
    sub = cube.add_subparsers(dest="cube_command", required=True, metavar="COMMAND")

    add = sub.add_parser(
        "add",
        parents=[common],
        help="add plaintext cubes",
        description="Add one cube from TEXT, or many from --file: a .jsonl file with one object per "
        "line (keys text, cube_id or id, tags, labels, semantic_type, priority, vector) or a text "
        "file with one memory per line. The options below are defaults for every line of a file.",
    )
    add.add_argument("space", metavar="SPACE", help="the space id or name")
    add.add_argument("text", metavar="TEXT", nargs="?", help="the memory text")
    add.add_argument("--file", type=pathlib.Path, metavar="PATH", help="load cubes from this file")
    add.add_argument("--id", dest="cube_id", default="", help="the cube id (default: chosen by the server)")
    add.add_argument("--tag", action="append", metavar="TAG", help="a tag (repeatable)")
    add.add_argument("--label", action="append", type=parse_label, metavar="KEY=VALUE", help="a label (repeatable)")
    add.add_argument(
        "--semantic-type",
        type=lambda s: s.lower().replace("-", "_"),
        choices=_SEMANTIC_TYPES,
        help="what the memory is",
    )
    add.add_argument("--priority", type=int, help="priority 0..100 (default 0)")
    add.add_argument("--batch-size", type=int, default=500, help="cubes per call with --file (default 500)")
    add.set_defaults(handler=_add)

    get = sub.add_parser("get", parents=[common], help="show a cube")
    get.add_argument("name", metavar="NAME", help="spaces/{space}/cubes/{cube}")
    get.set_defaults(handler=_get)

    list_ = sub.add_parser("list", parents=[common], help="list the cubes of a space")
    list_.add_argument("space", metavar="SPACE", help="the space id or name")
    list_.add_argument("--filter", default="", help="an AIP-160 filter, e.g. 'tags:\"work\"'")
    list_.add_argument("--limit", type=int, default=0, help="print at most this many cubes")
    list_.set_defaults(handler=_list)

    search = sub.add_parser("search", parents=[common], help="find the cubes nearest a text")
    search.add_argument("space", metavar="SPACE", help="the space id or name")
    search.add_argument("query", metavar="QUERY", help="the text to search for")
    search.add_argument("--top-k", type=int, default=10, help="how many results (default 10)")
    search.add_argument("--filter", default="", help="an AIP-160 filter the results must match")
    search.set_defaults(handler=_search)

    delete = sub.add_parser("delete", parents=[common], help="delete a cube")
    delete.add_argument("name", metavar="NAME", help="spaces/{space}/cubes/{cube}")
    delete.add_argument("--etag", default="", help="only delete if the cube still has this etag")
    delete.set_defaults(handler=_delete)


def cube_line(cube: Cube, score: float | None = None) -> str:
    """One line for a cube: name, score when searching, type and an 80-character preview."""
    if cube.text is not None:
        summary = preview(cube.text)
    elif cube.blob is not None:
        summary = f"<{cube.blob.media_type}, {cube.blob.size_bytes} bytes>"
    else:
        summary = ""
    scored = f"  {score:.4f}" if score is not None else ""
    return f"{cube.name}{scored}  {cube.type.value}  {summary}"


def _show(cube: Cube) -> None:
    def when(value: Any) -> str:
        return value.isoformat() if value is not None else ""

    rows = [
        ("name", cube.name),
        ("type", cube.type.value),
        ("text", cube.text if cube.text is not None else ""),
        ("tags", ", ".join(cube.tags)),
        ("labels", ", ".join(f"{k}={v}" for k, v in sorted(cube.labels.items()))),
        ("semantic_type", cube.semantic_type.value),
        ("source", cube.source.value),
        ("priority", str(cube.priority)),
        ("state", cube.state.value),
        ("version", str(cube.version)),
        ("etag", cube.etag),
        ("create_time", when(cube.create_time)),
        ("update_time", when(cube.update_time)),
        ("expire_time", when(cube.expire_time)),
    ]
    if cube.blob is not None:
        rows.append(("blob", f"{cube.blob.digest} ({cube.blob.size_bytes} bytes, {cube.blob.media_type})"))
    for key, value in rows:
        print(f"{key + ':':<15}{value}")


def _defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The cube fields given as options, used as defaults for every cube of a file."""
    defaults: dict[str, Any] = {}
    if args.tag:
        defaults["tags"] = list(args.tag)
    if args.label:
        defaults["labels"] = labels_of(args.label)
    if args.semantic_type is not None:
        defaults["semantic_type"] = args.semantic_type
    if args.priority is not None:
        defaults["priority"] = args.priority
    return defaults


def load_drafts(path: pathlib.Path, defaults: dict[str, Any]) -> list[CubeDraft]:
    """The cubes of a ``.jsonl`` file (one object per line) or a text file (one memory per line)."""
    drafts: list[CubeDraft] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            if path.suffix != ".jsonl":
                drafts.append(CubeDraft.from_mapping({**defaults, "text": line.rstrip("\r\n")}))
                continue
            try:
                item = json.loads(line)
                if not isinstance(item, dict):
                    raise ValueError("expected a JSON object")
                drafts.append(CubeDraft.from_mapping({**defaults, **item}))
            except (ValueError, TypeError) as error:
                raise ValueError(f"{path}:{number}: {error}") from error
    return drafts


def _add(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.text is None):
        print("error: give either TEXT or --file", file=sys.stderr)
        return 2
    if args.file is not None and args.cube_id:
        print("error: --id names one cube; give ids in the file instead", file=sys.stderr)
        return 2

    def action(client: MemosClient) -> int:
        defaults = _defaults(args)
        if args.file is None:
            draft = CubeDraft.from_mapping({**defaults, "text": args.text, "cube_id": args.cube_id})
            cube = client.create_cube(args.space, **vars(draft))
            if args.json:
                print_json(message_dict(cube.proto))
            else:
                print(cube_line(cube))
            return 0
        drafts = load_drafts(args.file, defaults)
        cubes = client.batch_create_cubes(args.space, drafts, batch_size=args.batch_size, progress=True)
        if args.json:
            print_json([message_dict(c.proto) for c in cubes])
        else:
            for cube in cubes:
                print(cube_line(cube))
        print(f"created {len(cubes)} cubes", file=sys.stderr)
        return 0

    return run(args, action)


def _get(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        cube = client.get_cube(args.name)
        if args.json:
            print_json(message_dict(cube.proto))
        else:
            _show(cube)
        return 0

    return run(args, action)


def _list(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        limit: int = args.limit
        page_size = min(limit, 1000) if limit > 0 else 0
        cubes = client.list_cubes(args.space, filter=args.filter, page_size=page_size)
        if limit > 0:
            cubes = itertools.islice(cubes, limit)
        if args.json:
            print_json([message_dict(c.proto) for c in cubes])
        else:
            for cube in cubes:
                print(cube_line(cube))
        return 0

    return run(args, action)


def _search(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        results = client.search(args.space, args.query, filter=args.filter, top_k=args.top_k)
        if args.json:
            print_json([message_dict(r.proto) for r in results])
        else:
            for result in results:
                print(cube_line(result.cube, result.score))
        return 0

    return run(args, action)


def _delete(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        client.delete_cube(args.name, etag=args.etag)
        if args.json:
            print_json({"name": args.name, "deleted": True})
        else:
            print(f"deleted {args.name}")
        return 0

    return run(args, action)
