"""The ``memos-grpc`` command: ``serve`` runs the server; ``space`` and ``cube`` talk to one."""
