"""The logs a node witnesses: the ``witness_logs`` setting, comma-separated C2SP vkeys of the logs' keys.

Each vkey is a log's Ed25519 checkpoint key (signature type 0x01) as note.py formats it; its key name is the
log's origin, as tlog-proof files and checkpoints assume. A format, with the other formats rather than with the
witness, so that settings can check the value at load time without importing a component.
"""

from __future__ import annotations

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.transparency.note import ED25519_TYPE, NoteError, NoteVerifier, parse_vkey

#: The name of the setting, for messages.
SETTING = "witness_logs"


def witnessed_logs(value: str) -> dict[str, NoteVerifier]:
    """Origin -> the log's checkpoint key, from the setting's text; raises INVALID_CONFIG naming the setting.

    The empty string witnesses nothing. Items are separated by commas (no vkey holds one); spaces around an
    item are ignored, an empty item is refused, and so are a key that is not a log key (type 0x01) and two
    keys for one origin (a witness keeps one state per origin, so it could not tell which key to trust).
    """
    logs: dict[str, NoteVerifier] = {}
    if not value.strip():
        return logs
    for position, item in enumerate(value.split(","), 1):
        text = item.strip()
        try:
            name, key_id, signature_type, public_key = parse_vkey(text)
        except NoteError as error:
            raise InvalidArgumentError(
                f"setting {SETTING}: item {position} is not a log's verifier key: {error.message}",
                reason=reasons.INVALID_CONFIG,
            ) from None
        if signature_type != ED25519_TYPE:
            raise InvalidArgumentError(
                f"setting {SETTING}: item {position} ({name}) is a key of type 0x{signature_type:02x}; a log's "
                f"checkpoint key has type 0x{ED25519_TYPE:02x} (0x04 is a witness's cosignature key)",
                reason=reasons.INVALID_CONFIG,
            )
        if name in logs:
            raise InvalidArgumentError(
                f"setting {SETTING}: two keys for the log {name!r}; list each log once", reason=reasons.INVALID_CONFIG
            )
        logs[name] = NoteVerifier(name, key_id, public_key)
    return logs
