"""``memos-grpc space``: create, get, list and delete spaces on a running server.

Each subcommand prints readable text, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse

from memos_client import MemosClient, Space, space_name

from memos_grpc.cli._connect import common_options, labels_of, message_dict, parse_label, print_json, run


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``space`` and its subcommands to the ``memos-grpc`` parser."""
    common = common_options()
    space = commands.add_parser("space", help="manage spaces", description="Manage spaces.")
    sub = space.add_subparsers(dest="space_command", required=True, metavar="COMMAND")

    create = sub.add_parser("create", parents=[common], help="create a space")
    create.add_argument("space_id", metavar="ID", help="the space id: [a-z][a-z0-9-]{0,62}")
    create.add_argument("--display-name", default="", help="a human-readable name")
    create.add_argument("--description", default="", help="what the space is for")
    create.add_argument("--label", action="append", type=parse_label, metavar="KEY=VALUE", help="a label (repeatable)")
    create.set_defaults(handler=_create)

    get = sub.add_parser("get", parents=[common], help="show a space")
    get.add_argument("space", metavar="ID", help="the space id or name")
    get.set_defaults(handler=_get)

    list_ = sub.add_parser("list", parents=[common], help="list the spaces")
    list_.add_argument("--page-size", type=int, default=0, help="spaces fetched per call")
    list_.set_defaults(handler=_list)

    delete = sub.add_parser("delete", parents=[common], help="delete a space")
    delete.add_argument("space", metavar="ID", help="the space id or name")
    delete.add_argument("--force", action="store_true", help="also delete every cube in the space")
    delete.add_argument("--etag", default="", help="only delete if the space still has this etag")
    delete.set_defaults(handler=_delete)


def _line(space: Space) -> str:
    title = f"  {space.display_name}" if space.display_name else ""
    return f"{space.name}  cubes={space.cube_count}  dim={space.vector_dimension}{title}"


def _show(space: Space, as_json: bool) -> None:
    if as_json:
        print_json(message_dict(space.proto))
        return
    rows = [
        ("name", space.name),
        ("display_name", space.display_name),
        ("description", space.description),
        ("labels", ", ".join(f"{k}={v}" for k, v in sorted(space.labels.items()))),
        ("cube_count", str(space.cube_count)),
        ("vector_dimension", str(space.vector_dimension)),
        ("etag", space.etag),
        ("create_time", space.create_time.isoformat() if space.create_time else ""),
        ("update_time", space.update_time.isoformat() if space.update_time else ""),
    ]
    for key, value in rows:
        print(f"{key + ':':<18}{value}")


def _create(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        space = client.create_space(
            args.space_id,
            display_name=args.display_name,
            description=args.description,
            labels=labels_of(args.label),
        )
        _show(space, args.json)
        return 0

    return run(args, action)


def _get(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        _show(client.get_space(args.space), args.json)
        return 0

    return run(args, action)


def _list(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        spaces = client.list_spaces(page_size=args.page_size)
        if args.json:
            print_json([message_dict(s.proto) for s in spaces])
        else:
            for space in spaces:
                print(_line(space))
        return 0

    return run(args, action)


def _delete(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        client.delete_space(args.space, force=args.force, etag=args.etag)
        if args.json:
            print_json({"name": space_name(args.space), "deleted": True})
        else:
            print(f"deleted {space_name(args.space)}")
        return 0

    return run(args, action)
