"""memos-grpc: LLM memory as a governed, portable resource, served over gRPC.

The server package. Components live one per folder: ``vault`` (storage and
search), ``embedding`` (the default embedder), ``server`` (gRPC services,
health, error mapping) and ``cli`` (the ``memos-grpc`` command).
"""

__version__ = "0.1.0"
