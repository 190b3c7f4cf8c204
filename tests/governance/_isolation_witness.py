"""The isolation matrix's row for WitnessService.AddCheckpoint.

The world's server witnesses one log (``WITNESSED_LOG``, its vkey in the server's ``witness_logs``). Each
cell grows that log by one entry and asks for a checkpoint from the size the witness last cosigned, so every
allowed cell advances the witness by one and a refused one must leave it where it was.
"""

from __future__ import annotations

from typing import Any

from _isolation_world import Access, Row, Target, Who, World, assert_effect

from memos_grpc._proto.memos.v1 import witness_service_pb2 as wit
from memos_grpc.interchange.keys import SigningKey
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.note import NoteVerifier, sign_note

_W = "/memos.v1.WitnessService/"
_ORIGIN = "isolation.example.com/log"
_KEY = SigningKey.from_seed(bytes(range(32)))
#: The vkey the world's server is configured to witness.
WITNESSED_LOG = NoteVerifier.for_key(_ORIGIN, _KEY.public_key).vkey()
_leaves: list[bytes] = []


def _cosigned_size(w: World) -> int:
    assert w.server.vault is not None
    state = w.server.vault.witness.latest(_ORIGIN)
    return 0 if state is None else state.size


def _node(level: int, index: int) -> bytes:
    return merkle.root_from_leaves(_leaves[index << level : (index + 1) << level])


def _add_checkpoint(w: World, cell: str) -> Target:
    old = _cosigned_size(w)
    del _leaves[old:]  # entries of refused cells were never cosigned: the log is what the witness saw, plus one
    _leaves.append(merkle.leaf_hash(cell.encode()))
    size = len(_leaves)
    note = sign_note(Checkpoint(_ORIGIN, size, merkle.root_from_leaves(_leaves)).body(), _ORIGIN, _KEY)
    request = wit.AddCheckpointRequest(
        old_size=old, consistency_proof=merkle.consistency_proof(old, size, _node), checkpoint=note
    )
    return Target(request, lambda allowed: assert_effect(_cosigned_size(w), size if allowed else old))


def _cosigned_one_more(_w: World, _who: Who, response: Any) -> None:
    assert response.size == len(_leaves) and response.cosignatures.startswith("\u2014 ")


WITNESS_ROWS: list[Row] = [
    Row(_W + "AddCheckpoint", Access.AUTHENTICATED, True, _add_checkpoint, _cosigned_one_more),
]
