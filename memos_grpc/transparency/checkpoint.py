"""C2SP tlog-checkpoint v1.0.0: the note text a log signs for one tree head (origin, size, root hash).

``Checkpoint.body()`` writes the text and ``Checkpoint.parse()`` reads it back under one strict grammar
(docs/marketplace.md, "Checkpoints"); the signature lines around it are note.py's and cosignature.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

from memos_grpc import reasons
from memos_grpc.transparency._text import (
    MAX_INT63,
    TransparencyFormatError,
    b64encode,
    has_control,
    parse_decimal,
    strict_b64decode,
    utf8_text,
)

ROOT_HASH_BYTES = 32
#: Largest tree size a checkpoint may state (2**63 - 1).
MAX_TREE_SIZE = MAX_INT63
#: Origin line length in UTF-8 bytes.
MAX_ORIGIN_BYTES = 255
#: Extension lines (opaque, NOT RECOMMENDED by the spec) and the length of each.
MAX_EXTENSIONS = 16
MAX_EXTENSION_BYTES = 1024


class CheckpointError(TransparencyFormatError):
    """A checkpoint's text breaks the grammar; ``reason`` is one of the CHECKPOINT_* reasons."""


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head as a C2SP checkpoint body: origin, tree size, root hash and extension lines.

    Immutable, and valid by construction: raises ``CheckpointError`` for any field the grammar does not allow.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A Checkpoint that exists is one whose body() parses back to it.
        _check_origin(self.origin)
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"tree size must be 0..{MAX_TREE_SIZE}", reason=reasons.CHECKPOINT_SIZE_INVALID)
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_HASH_BYTES:
            raise CheckpointError(f"root hash must be {ROOT_HASH_BYTES} bytes", reason=reasons.CHECKPOINT_ROOT_INVALID)
        if len(self.extensions) > MAX_EXTENSIONS:
            raise CheckpointError(
                f"at most {MAX_EXTENSIONS} extension lines", reason=reasons.CHECKPOINT_EXTENSION_INVALID
            )
        for extension in self.extensions:
            _check_extension(extension)

    def body(self) -> str:
        lines = [self.origin, str(self.size), b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str | bytes) -> Checkpoint:
        """The checkpoint in a note's text (final newline included). Raises CheckpointError."""
        text = utf8_text(text, "the checkpoint", CheckpointError, reasons.CHECKPOINT_MALFORMED)
        if not text.endswith("\n"):
            raise CheckpointError("the checkpoint does not end with a newline", reason=reasons.CHECKPOINT_MALFORMED)
        if has_control(text, allow_newline=True):
            raise CheckpointError("the checkpoint holds a control character", reason=reasons.CHECKPOINT_MALFORMED)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(
                "a checkpoint has an origin, a tree size and a root hash line", reason=reasons.CHECKPOINT_MALFORMED
            )
        if len(lines) - 3 > MAX_EXTENSIONS:
            raise CheckpointError(
                f"at most {MAX_EXTENSIONS} extension lines", reason=reasons.CHECKPOINT_EXTENSION_INVALID
            )
        origin, size_text, root_text, *extensions = lines
        size = parse_decimal(size_text, MAX_TREE_SIZE)
        if size is None:
            raise CheckpointError(
                f"tree size {size_text[:40]!r} is not a decimal 0..{MAX_TREE_SIZE} without leading zeros",
                reason=reasons.CHECKPOINT_SIZE_INVALID,
            )
        root = strict_b64decode(root_text)
        if root is None or len(root) != ROOT_HASH_BYTES:
            raise CheckpointError(
                f"root hash is not {ROOT_HASH_BYTES} bytes of padded standard base64",
                reason=reasons.CHECKPOINT_ROOT_INVALID,
            )
        return cls(origin, size, root, tuple(extensions))


def _check_origin(origin: str) -> None:
    if (
        not isinstance(origin, str)
        or not origin
        or origin != origin.strip()
        or "\n" in origin
        or has_control(origin, allow_newline=False)
        or len(origin.encode("utf-8", "surrogatepass")) > MAX_ORIGIN_BYTES
    ):
        raise CheckpointError(
            f"origin must be 1..{MAX_ORIGIN_BYTES} bytes without control characters or leading or trailing space",
            reason=reasons.CHECKPOINT_ORIGIN_INVALID,
        )


def _check_extension(extension: str) -> None:
    if (
        not isinstance(extension, str)
        or not extension
        or "\n" in extension
        or has_control(extension, allow_newline=False)
        or len(extension.encode("utf-8", "surrogatepass")) > MAX_EXTENSION_BYTES
    ):
        raise CheckpointError(
            f"extension lines must be 1..{MAX_EXTENSION_BYTES} bytes without control characters",
            reason=reasons.CHECKPOINT_EXTENSION_INVALID,
        )
