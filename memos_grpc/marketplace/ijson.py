"""The strict I-JSON reader, kept importable here: it lives in ``memos_grpc.interchange.ijson`` (docs/protocol.md,
"The strict grammar"), since envelopes, statements and trust roots are read with it too."""

from memos_grpc.interchange.ijson import IJsonError, loads

__all__ = ["IJsonError", "loads"]
