"""The online ``memos-grpc market`` subcommands: listings, releases, licenses, events and the log of a server.

Each runs through ``_connect.run`` with a ``MemosClient`` (connection options, ``--json``, one ``error:`` line
and exit 1 on a refusal). ``publish`` and ``download`` stream files with a tqdm progress bar on stderr;
``acquire`` writes the grant and its tlog-proof to files for the offline ``market verify``; ``subscribe`` prints
events as they arrive until Ctrl-C (or ``--count``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import sys
from typing import Any

from memos_client import (
    EVENT_TYPES,
    License,
    Listing,
    LogCheckpoint,
    LogEntry,
    MarketEvent,
    MemosClient,
    Release,
    license_name,
    listing_name,
)

from memos_grpc.cli._connect import common_options, message_dict, print_json, run
from memos_grpc.primitives.canonical import format_time, parse_time

SEARCH_MODES = ("dense", "lexical", "hybrid")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the online subcommands to ``memos-grpc market``."""
    common = common_options()

    listing = sub.add_parser("listing", help="create, get, list, search and update listings")
    listings = listing.add_subparsers(dest="listing_command", required=True, metavar="COMMAND")
    create = listings.add_parser("create", parents=[common], help="create a listing (you become its owner)")
    create.add_argument("listing", metavar="LISTING", help="the listing id (or listings/<id>)")
    create.add_argument("--title", required=True, help="what the MemBlock is, for people")
    create.add_argument("--description", default="", help="what it holds and what it is for")
    create.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    create.add_argument("--threshold", type=int, default=0, metavar="N", help="publisher keys that must sign")
    create.set_defaults(handler=_listing_create)
    get = listings.add_parser("get", parents=[common], help="show a listing")
    get.add_argument("listing", metavar="LISTING")
    get.set_defaults(handler=_listing_get)
    list_ = listings.add_parser("list", parents=[common], help="list listings in name order")
    list_.add_argument("--filter", default="", help="an AIP-160 filter (tags, publisher, license, ...)")
    list_.add_argument("--page-size", type=int, default=0, metavar="N", help="listings per call (all are shown)")
    list_.set_defaults(handler=_listing_list)
    search = listings.add_parser("search", parents=[common], help="find the listings nearest a text")
    search.add_argument("text", metavar="TEXT")
    search.add_argument("--mode", default="dense", choices=SEARCH_MODES)
    search.add_argument("--filter", default="", help="an AIP-160 filter the results must match")
    search.add_argument("--top-k", type=int, default=0, metavar="N", help="how many results (default 10)")
    search.set_defaults(handler=_listing_search)
    update = listings.add_parser("update", parents=[common], help="change a listing's title, description or tags")
    update.add_argument("listing", metavar="LISTING")
    update.add_argument("--title")
    update.add_argument("--description")
    update.add_argument("--tag", action="append", help="the new tags (repeatable; replaces them all)")
    update.add_argument("--threshold", type=int, metavar="N", help="publisher threshold (before the first release)")
    update.add_argument("--etag", default="", help="fail if the listing changed since this etag")
    update.set_defaults(handler=_listing_update)

    publish = sub.add_parser(
        "publish",
        parents=[common],
        help="publish a release of a listing from a bundle file",
        description="Stream FILE to the server as release RELEASE (a SemVer version) of LISTING under the terms "
        "in --terms. The bundle's statement must name the listing, the release, the terms' license and digest "
        "(bundle export --release). Publishing the same bytes again shows the same release.",
    )
    publish.add_argument("listing", metavar="LISTING")
    publish.add_argument("release", metavar="RELEASE", help="the release id, e.g. 1.0.0")
    publish.add_argument("--bundle", type=pathlib.Path, required=True, metavar="FILE", help="the bundle file")
    publish.add_argument("--terms", type=pathlib.Path, required=True, metavar="FILE", help="the terms (JSON)")
    publish.add_argument("--proof-out", type=pathlib.Path, metavar="FILE", help="write the publish entry's proof")
    publish.add_argument("--validate-only", action="store_true", help="check everything, publish nothing")
    publish.set_defaults(handler=_publish)

    releases = sub.add_parser("releases", parents=[common], help="list the releases of a listing, newest first")
    releases.add_argument("listing", metavar="LISTING")
    releases.add_argument("--show-yanked", action="store_true", help="include yanked releases")
    releases.add_argument("--filter", default="", help="an AIP-160 filter (license, state, ...)")
    releases.set_defaults(handler=_releases)

    download = sub.add_parser("download", parents=[common], help="download a release's bundle to a file")
    download.add_argument("release", metavar="RELEASE", help="listings/<id>/releases/<version>")
    download.add_argument("--out", type=pathlib.Path, required=True, metavar="FILE")
    download.add_argument("--license", default="", help="a license of the release you hold (not for its owner)")
    download.set_defaults(handler=_download)

    yank = sub.add_parser("yank", parents=[common], help="yank a release, with a reason")
    yank.add_argument("release", metavar="RELEASE")
    yank.add_argument("--reason", required=True)
    yank.set_defaults(handler=_yank)

    acquire = sub.add_parser(
        "acquire",
        parents=[common],
        help="acquire a license of a release; write its grant and proof for 'market verify'",
    )
    acquire.add_argument("release", metavar="RELEASE")
    acquire.add_argument("--licensee", required=True, metavar="PRINCIPAL", help="principals/<id> on the buyer's node")
    acquire.add_argument("--licensee-key", required=True, metavar="KEYID", help="the licensee's key id (64 hex)")
    acquire.add_argument("--not-before", type=_time, metavar="RFC3339", help="narrow the window's start")
    acquire.add_argument("--not-after", type=_time, metavar="RFC3339", help="narrow the window's end")
    acquire.add_argument("--grant-out", type=pathlib.Path, metavar="FILE", help="write the grant (DSSE JSON)")
    acquire.add_argument("--proof-out", type=pathlib.Path, metavar="FILE", help="write its tlog-proof@v1")
    acquire.set_defaults(handler=_acquire)

    license = sub.add_parser("license", help="show, list and revoke licenses")
    licenses = license.add_subparsers(dest="license_command", required=True, metavar="COMMAND")
    lget = licenses.add_parser("get", parents=[common], help="show a license")
    lget.add_argument("license", metavar="LICENSE")
    lget.set_defaults(handler=_license_get)
    llist = licenses.add_parser("list", parents=[common], help="list the licenses you may see")
    llist.add_argument("--filter", default="", help="an AIP-160 filter (release, listing, licensee, state, ...)")
    llist.set_defaults(handler=_license_list)
    revoke = licenses.add_parser("revoke", parents=[common], help="revoke a license, with a reason")
    revoke.add_argument("license", metavar="LICENSE")
    revoke.add_argument("--reason", required=True)
    revoke.set_defaults(handler=license_revoke)

    subscribe = sub.add_parser(
        "subscribe",
        parents=[common],
        help="print publish, yank and revoke events as they arrive (Ctrl-C ends)",
        description="Follow the marketplace's events in log order. All filters given must match. "
        "With --start-index the log is replayed from that index first.",
    )
    subscribe.add_argument("--type", action="append", default=[], choices=EVENT_TYPES, help="(repeatable)")
    subscribe.add_argument("--tag", action="append", default=[], help="listings with this tag (repeatable)")
    subscribe.add_argument("--listing", action="append", default=[], help="this listing (repeatable)")
    subscribe.add_argument("--query", default="", help="listings similar to this text")
    subscribe.add_argument("--min-score", type=float, default=0.0, help="with --query: least similarity (0.5)")
    subscribe.add_argument("--start-index", type=int, metavar="N", help="replay from this log index")
    subscribe.add_argument("--count", type=int, metavar="N", help="stop after N events")
    subscribe.set_defaults(handler=_subscribe)

    log = sub.add_parser("log", help="the marketplace's transparency log: checkpoint, proofs, entries")
    logs = log.add_subparsers(dest="log_command", required=True, metavar="COMMAND")
    checkpoint = logs.add_parser("checkpoint", parents=[common], help="show the latest published checkpoint")
    checkpoint.set_defaults(handler=_log_checkpoint)
    proof = logs.add_parser("proof", parents=[common], help="the inclusion proof of an entry (tlog-proof@v1)")
    proof.add_argument("index", type=int, metavar="INDEX")
    proof.add_argument("--out", type=pathlib.Path, metavar="FILE", help="write the proof file here")
    proof.set_defaults(handler=_log_proof)
    entries = logs.add_parser("entries", parents=[common], help="print entries of the log")
    entries.add_argument("--start", type=int, default=0, metavar="INDEX")
    entries.add_argument("--count", type=int, metavar="N", help="at most N entries (default: to the tree size)")
    entries.set_defaults(handler=_log_entries)


def _time(text: str) -> dt.datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None


def _when(value: dt.datetime | None) -> str:
    return format_time(value) if value is not None else ""


def _rows(rows: list[tuple[str, object]]) -> None:
    for label, value in rows:
        if value not in ("", None, ()):
            shown = ", ".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
            print(f"{label + ':':<16}{shown}")


# -- listings --------------------------------------------------------------------------------------------------


def _show_listing(listing: Listing, args: argparse.Namespace) -> None:
    if args.json:
        print_json(message_dict(listing.proto))
        return
    print(listing.name)
    _rows(
        [
            ("title", listing.title),
            ("description", listing.description),
            ("tags", listing.tags),
            ("owner", listing.owner),
            ("latest release", listing.latest_release),
            ("license", listing.license),
            ("releases", listing.release_count),
            ("publisher keys", listing.publisher_keys),
            ("threshold", listing.publisher_threshold),
            ("etag", listing.etag),
        ]
    )


def _listing_create(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        listing = client.create_listing(
            args.listing,
            args.title,
            description=args.description,
            tags=args.tag,
            publisher_threshold=args.threshold,
        )
        _show_listing(listing, args)
        return 0

    return run(args, action)


def _listing_get(args: argparse.Namespace) -> int:
    return run(args, lambda client: _shown(_show_listing, client.get_listing(args.listing), args))


def _shown(show: Any, value: Any, args: argparse.Namespace) -> int:
    show(value, args)
    return 0


def _listing_list(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        found = client.list_listings(filter=args.filter, page_size=args.page_size)
        if args.json:
            print_json([message_dict(x.proto) for x in found])
        else:
            for x in found:
                print(f"{x.name}  {x.latest_release.rpartition('/')[2] or '-'}  {x.license or '-'}  {x.title}")
        return 0

    return run(args, action)


def _listing_search(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        hits = client.search_listings(args.text, mode=args.mode, filter=args.filter, top_k=args.top_k)
        if args.json:
            print_json([{"score": h.score, "listing": message_dict(h.listing.proto)} for h in hits])
        else:
            for hit in hits:
                print(f"{hit.score:.3f}  {hit.listing.name}  {hit.listing.title}")
        return 0

    return run(args, action)


def _listing_update(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        listing = client.update_listing(
            args.listing,
            etag=args.etag,
            title=args.title,
            description=args.description,
            tags=args.tag,
            publisher_threshold=args.threshold,
        )
        _show_listing(listing, args)
        return 0

    return run(args, action)


# -- releases --------------------------------------------------------------------------------------------------


def _show_release(release: Release, args: argparse.Namespace) -> None:
    if args.json:
        print_json(message_dict(release.proto))
        return
    print(release.name)
    _rows(
        [
            ("state", release.state + (f" ({release.yank.reason})" if release.yank else "")),
            ("license", release.license),
            ("bundle", f"{release.bundle_digest} ({release.size_bytes} bytes)"),
            ("statement", release.statement_digest),
            ("cubes", release.cube_count),
            ("publisher", release.publisher),
            ("signer keys", release.signer_keys),
            ("log index", release.log_index),
            ("created", _when(release.create_time)),
        ]
    )


def _publish(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        terms = args.terms.read_bytes()
        result = client.publish_release(
            args.listing, args.release, args.bundle, terms, validate_only=args.validate_only, progress=True
        )
        if args.proof_out is not None and result.tlog_proof:
            args.proof_out.write_text(result.tlog_proof, encoding="utf-8")
        if args.json:
            print_json(
                {
                    "release": message_dict(result.release.proto),
                    "tlog_proof": result.tlog_proof,
                    "verification": message_dict(result.verification.proto),
                }
            )
        else:
            _show_release(result.release, args)
            if args.validate_only:
                print("validated only: nothing was published")
        return 0

    return run(args, action)


def _releases(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        found = client.list_releases(args.listing, filter=args.filter, show_yanked=args.show_yanked)
        if args.json:
            print_json([message_dict(r.proto) for r in found])
        else:
            for r in found:
                yank = f"  yanked: {r.yank.reason}" if r.yank else ""
                print(f"{r.name}  {r.license}  {r.cube_count} cubes  {r.size_bytes} bytes{yank}")
        return 0

    return run(args, action)


def _download(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        release = client.download_release(args.release, args.out, license=args.license, progress=True)
        if args.json:
            print_json({"release": message_dict(release.proto), "file": str(args.out)})
        else:
            print(f"downloaded {release.name} to {args.out} ({release.size_bytes} bytes, {release.bundle_digest})")
            if release.yank:
                print(f"note: the release is yanked: {release.yank.reason}")
        return 0

    return run(args, action)


def _yank(args: argparse.Namespace) -> int:
    return run(args, lambda client: _shown(_show_release, client.yank_release(args.release, args.reason), args))


# -- licenses --------------------------------------------------------------------------------------------------


def _show_license(license: License, args: argparse.Namespace) -> None:
    if args.json:
        print_json(message_dict(license.proto))
        return
    print(license.name)
    state = license.state + (f" ({license.revocation.reason})" if license.revocation else "")
    _rows(
        [
            ("state", state),
            (
                "release",
                license.release + (f" (yanked: {license.release_yank.reason})" if license.release_yank else ""),
            ),
            ("licensee", f"{license.licensee} (key {license.licensee_key})"),
            ("acquirer", license.acquirer),
            ("license", license.terms.license),
            ("valid", f"{_when(license.not_before)} to {_when(license.not_after)}"),
            ("grant", license.grant_digest),
            ("log index", license.log_index),
            ("proof", "yes" if license.tlog_proof else "not yet: no published checkpoint covers the grant"),
        ]
    )


def _acquire(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        license = client.acquire_license(
            args.release, args.licensee, args.licensee_key, not_before=args.not_before, not_after=args.not_after
        )
        if args.grant_out is not None:
            args.grant_out.write_bytes(license.grant_envelope)
        if args.proof_out is not None and license.tlog_proof:
            args.proof_out.write_text(license.tlog_proof, encoding="utf-8")
        _show_license(license, args)
        if args.proof_out is not None and not license.tlog_proof:
            print(f"error: {license.name} has no proof yet; fetch it later with 'market log proof'", file=sys.stderr)
            return 1
        return 0

    return run(args, action)


def _license_get(args: argparse.Namespace) -> int:
    return run(args, lambda client: _shown(_show_license, client.get_license(args.license), args))


def _license_list(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        found = client.list_licenses(filter=args.filter)
        if args.json:
            print_json([message_dict(x.proto) for x in found])
        else:
            for x in found:
                print(f"{x.name}  {x.state}  {x.release}  {x.licensee}")
        return 0

    return run(args, action)


def license_revoke(args: argparse.Namespace) -> int:
    """``market license revoke`` and ``market revoke``: revokes a license and shows it."""
    return run(
        args,
        lambda client: _shown(_show_license, client.revoke_license(license_name(args.license), args.reason), args),
    )


# -- events ----------------------------------------------------------------------------------------------------


def _event_line(event: MarketEvent) -> str:
    release = event.release.name if event.release else ""
    what = {
        "publish": release,
        "yank": f"{release} ({event.release.yank.reason})" if event.release and event.release.yank else release,
        "revoke": f"{event.license} of {release} ({event.revocation.reason if event.revocation else ''})",
    }.get(event.type, release)
    score = f"  score {event.score:.3f}" if event.score else ""
    return f"{event.log_index}  {event.type}  {what}{score}"


def _subscribe(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        events = client.subscribe(
            types=args.type,
            tags=args.tag,
            listings=[listing_name(x) for x in args.listing],
            query=args.query,
            min_score=args.min_score,
            start_index=args.start_index,
        )
        seen = 0
        try:
            for event in events:
                if args.json:
                    print(json_line(message_dict(event.proto)), flush=True)
                else:
                    print(_event_line(event), flush=True)
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
        except KeyboardInterrupt:
            pass  # Ctrl-C ends a subscription: the call is cancelled below, and that is a normal end
        finally:
            events.close()
        return 0

    return run(args, action)


def json_line(value: Any) -> str:
    """One JSON value on one line (a stream of events is read line by line)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- the log ---------------------------------------------------------------------------------------------------


def _show_checkpoint(checkpoint: LogCheckpoint, args: argparse.Namespace) -> None:
    if args.json:
        print_json(
            {
                "origin": checkpoint.origin,
                "size": checkpoint.size,
                "root_hash": checkpoint.root_hash.hex(),
                "cosigners": list(checkpoint.cosigners),
                "note": checkpoint.note,
            }
        )
        return
    _rows(
        [
            ("origin", checkpoint.origin),
            ("size", str(checkpoint.size)),
            ("root", checkpoint.root_hash.hex()),
            ("cosigners", checkpoint.cosigners or "none"),
        ]
    )
    print()
    print(checkpoint.note, end="")


def _log_checkpoint(args: argparse.Namespace) -> int:
    return run(args, lambda client: _shown(_show_checkpoint, client.get_checkpoint(), args))


def _log_proof(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        proof = client.get_inclusion_proof(args.index)
        if args.out is not None:
            args.out.write_text(proof.tlog_proof, encoding="utf-8")
        if args.json:
            print_json(
                {
                    "index": proof.index,
                    "tree_size": proof.tree_size,
                    "entry": proof.entry.decode("utf-8", "replace"),
                    "hashes": [h.hex() for h in proof.hashes],
                    "tlog_proof": proof.tlog_proof,
                }
            )
        elif args.out is None:
            print(proof.tlog_proof, end="")
        else:
            print(f"wrote the proof of entry {proof.index} in tree size {proof.tree_size} to {args.out}")
        return 0

    return run(args, action)


def _log_entries(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        shown: list[LogEntry] = []
        for entry in client.iter_log_entries(args.start):
            if args.count is not None and len(shown) >= args.count:
                break
            shown.append(entry)
            if not args.json:  # an entry is several lines of memstore-entry/v1 text: shown indented under its index
                print(f"entry {entry.index}")
                for line in entry.data.decode("utf-8", "replace").splitlines():
                    print(f"  {line}")
        if args.json:
            print_json([{"index": e.index, "entry": e.data.decode("utf-8", "replace")} for e in shown])
        return 0

    return run(args, action)
