"""``memos-grpc model``: the server's model, cube transforms and the operations they run as.

``model transform`` starts a TransformCube and, unless ``--no-wait``, follows
the operation with a progress bar on stderr; Ctrl-C while following asks the
server to cancel it. A failed or cancelled operation ends the command with
its reason and exit code 1, as any error does.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import grpc
from memos_client import MemosClient, MemosError, ModelInfo, Operation
from tqdm import tqdm

from memos_grpc.cli._connect import common_options, message_dict, print_json, run

#: The exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``model`` and its subcommands to the ``memos-grpc`` parser."""
    common = common_options()
    model = commands.add_parser(
        "model",
        help="the server's model, cube transforms and operations",
        description="Turn cubes into activation (KV cache) or parametric (LoRA adapter) memory and back.",
    )
    sub = model.add_subparsers(dest="model_command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", parents=[common], help="show the model the server transforms with")
    info.set_defaults(handler=_info)

    transform = sub.add_parser(
        "transform",
        parents=[common],
        help="turn cubes into another memory type",
        description="Transform CUBE to --to. Activation and plaintext change one cube in place; parametric trains "
        "a LoRA adapter on one or more cubes and stores it as a new cube. Unless --no-wait, the operation is "
        "followed to its end (Ctrl-C cancels it) and the resulting cube is printed.",
    )
    transform.add_argument("space", metavar="SPACE", help="the space id or name")
    transform.add_argument("cubes", metavar="CUBE", nargs="+", help="a cube id or name (spaces/{space}/cubes/{cube})")
    transform.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="TYPE",
        choices=["activation", "parametric", "plaintext"],
        help="the memory type to turn the cubes into: activation, parametric or plaintext",
    )
    transform.add_argument("--id", dest="cube_id", default="", help="the new parametric cube's id (default: chosen)")
    training = transform.add_argument_group("training (parametric; default: the server's settings)")
    training.add_argument("--steps", type=int, default=0, help="optimizer steps")
    training.add_argument("--learning-rate", type=float, default=0.0, metavar="RATE", help="AdamW learning rate")
    training.add_argument("--rank", type=int, default=0, help="the LoRA rank")
    training.add_argument(
        "--target-module", dest="target_modules", action="append", metavar="MODULE", help="a module (repeatable)"
    )
    training.add_argument("--seed", type=int, default=0, help="seed of the adapter's initial weights")
    transform.add_argument("--no-wait", action="store_true", help="print the operation name and return at once")
    transform.set_defaults(handler=_transform)

    operation = sub.add_parser("operation", parents=[common], help="show, follow or cancel an operation")
    operation.add_argument("name", metavar="NAME", help="spaces/{space}/operations/{operation}")
    mode = operation.add_mutually_exclusive_group()
    mode.add_argument("--watch", action="store_true", help="follow it to its end with a progress bar")
    mode.add_argument("--cancel", action="store_true", help="ask the server to cancel it")
    operation.set_defaults(handler=_operation)


def _rows(rows: list[tuple[str, Any]]) -> None:
    for key, value in rows:
        print(f"{key + ':':<17}{value}")


def _show_model(info: ModelInfo) -> None:
    _rows(
        [
            ("fingerprint", info.fingerprint),
            ("type", info.model_type),
            ("layers", info.num_layers),
            ("kv_heads", info.num_kv_heads),
            ("head_dim", info.head_dim),
            ("dtype", info.dtype),
            ("parameters", f"{info.parameter_count:,}"),
            ("max_positions", info.max_positions),
            ("default_targets", ", ".join(info.default_target_modules)),
        ]
    )


def _show_operation(operation: Operation) -> None:
    def when(value: Any) -> str:
        return value.isoformat() if value is not None else ""

    rows: list[tuple[str, Any]] = [
        ("name", operation.name),
        ("state", operation.state),
        ("step", f"{operation.step}/{operation.total_steps}"),
    ]
    if operation.loss or operation.initial_loss:
        rows += [("initial_loss", f"{operation.initial_loss:.4f}"), ("loss", f"{operation.loss:.4f}")]
    rows += [("creator", operation.creator), ("cube", operation.cube)]
    if operation.error_code is not None or operation.error_reason:
        code = operation.error_code.name if operation.error_code is not None else ""
        rows.append(("error", f"{operation.error_reason or code}: {operation.error_message}"))
    rows += [
        ("create_time", when(operation.create_time)),
        ("update_time", when(operation.update_time)),
        ("end_time", when(operation.end_time)),
    ]
    _rows(rows)


def _progress_text(operation: Operation) -> str:
    return f"{operation.state}, loss {operation.loss:.4f}" if operation.loss else operation.state


def _watch(client: MemosClient, name: str) -> Operation:
    """Follows an operation to its end with a progress bar on stderr (Ctrl-C raises KeyboardInterrupt)."""
    last: Operation | None = None
    bar: tqdm[Any] | None = None
    try:
        for last in client.watch_operation(name):
            if bar is None:  # drawn from the first state, so that it starts with the operation's total
                bar = tqdm(total=last.total_steps or None, file=sys.stderr, unit="step", dynamic_ncols=True)
            elif last.total_steps and bar.total != last.total_steps:
                bar.total = last.total_steps
            bar.set_description(_progress_text(last), refresh=False)
            bar.update(max(0, last.step - bar.n))
            if last.done:
                break
    finally:
        if bar is not None:
            bar.close()
    if last is None or not last.done:
        # Not UnavailableError: ``run`` would call the server unreachable, when it was the stream that ended early.
        raise MemosError(f"the watch of {name} ended before the operation was done", code=grpc.StatusCode.UNAVAILABLE)
    return last


def _follow(client: MemosClient, name: str) -> Operation | int:
    """The finished operation, or the exit code after Ctrl-C (the server is asked to cancel it first)."""
    try:
        return _watch(client, name)
    except KeyboardInterrupt:
        # Stopping the command must not leave a training run going on the server without anyone waiting for it.
        print(f"\ninterrupted: asking the server to cancel {name}", file=sys.stderr)
        state = client.cancel_operation(name)
        print(f"{name} is {state.state}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _info(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        info = client.get_model()
        if args.json:
            print_json(message_dict(info.proto))
        else:
            _show_model(info)
        return 0

    return run(args, action)


def _transform(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        started = client.transform_cube(
            args.cubes,
            args.target,
            parent=args.space,
            cube_id=args.cube_id,
            steps=args.steps,
            learning_rate=args.learning_rate,
            rank=args.rank,
            target_modules=args.target_modules or (),
            seed=args.seed,
        )
        if args.no_wait:
            if args.json:
                print_json(message_dict(started.proto))
            else:
                print(started.name)
            return 0
        final = _follow(client, started.name)
        if isinstance(final, int):
            return final
        if args.json:
            print_json(message_dict(final.proto))
        final.raise_if_failed()  # reported by ``run`` as any failed call
        if not args.json:
            print(final.cube)
        return 0

    return run(args, action)


def _operation(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        if args.cancel:
            operation = client.cancel_operation(args.name)
        elif args.watch:
            followed = _follow(client, args.name)
            if isinstance(followed, int):
                return followed
            operation = followed
        else:
            operation = client.get_operation(args.name)
        if args.json:
            print_json(message_dict(operation.proto))
        else:
            _show_operation(operation)
        if args.watch:
            operation.raise_if_failed()
        return 0

    return run(args, action)
