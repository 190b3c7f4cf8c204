"""The lexical (BM25) index of plaintext cubes: one tantivy index per space, in memory, fed by the search catalog.

Every cube the catalog learns of (after each commit, and from DuckDB at
start-up) is indexed under its vector label; every cube it forgets is
deleted. Like the catalog, the index is derived and rebuilt at start-up, so
it needs no files of its own. This is the embedded backend's; on PostgreSQL the database ranks
(``store/postgres/lexical_search.py``).

Each space has an index of its own so that BM25 statistics (how rare a word
is, how long a document is on average) are the space's: one tenant's cubes
never change another tenant's lexical ranking.

An open tantivy writer holds megabytes of heap and a few threads, which
thousands of spaces cannot each keep, and a commit costs milliseconds however
small it is. So changes wait in Python, per space, and a background thread
commits them at most every ``lexical_refresh_seconds``, opening a writer for
each changed space only for the time of its commit (and every few seconds
hands the heap those writers freed back to the system). A new cube is found
lexically within that interval (dense search finds it at once). A deleted
cube never comes back meanwhile: hits go through the catalog, which forgets
it at its commit.
"""

from __future__ import annotations

import ctypes
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import tantivy

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.rows import memory_text

log = logging.getLogger(__name__)

#: tantivy's English tokenizer: lower case, stop at punctuation, Porter stemming.
_TOKENIZER = "en_stem"
#: What a query keeps: words (the query parser's operators and quotes are not for callers to use).
_WORD = re.compile(r"\w+", re.UNICODE)
#: Heap of the writer opened for a commit: the least tantivy accepts. A commit's changes are few,
#: and tantivy sizes the tables it allocates for every new segment by this budget.
_WRITER_HEAP_BYTES = 15_000_000


class LexicalSearch(Protocol):
    """What the search catalog keeps lexically in step and searches: ``LexicalIndex`` (tantivy, in memory) on the
    embedded backend, ``PgLexicalIndex`` (BM25 in SQL, ``store/postgres/lexical_search.py``) on PostgreSQL."""

    def put(self, space_id: str, label: int, text: str) -> None: ...
    def remove(self, labels: list[int]) -> None: ...
    def drop_space(self, space_id: str) -> None: ...
    def refresh(self) -> None: ...
    def close(self) -> None: ...
    def search(self, space_id: str, text: str, limit: int) -> list[tuple[int, float]]: ...


def lexical_text(cube: cube_pb2.MemCube) -> str | None:
    """What the index takes of a cube: its text (or source text) and search context (None when it has neither)."""
    text, context = memory_text(cube), cube.plaintext.context if cube.HasField("plaintext") else ""
    if not text and not context:
        return None
    return f"{text}\n{context}" if context else text


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, which hands freed heap back to the system (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _find_malloc_trim()
#: Least seconds between two trims of the heap: a trim costs tens of milliseconds.
_TRIM_SECONDS = 5.0


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    # Indexed to delete by label, fast to read hits' labels without the document store.
    builder.add_integer_field("label", indexed=True, fast=True)
    builder.add_text_field("text", tokenizer_name=_TOKENIZER)
    return builder.build()


@dataclass
class _Space:
    """One space's index and the changes not yet committed to it."""

    index: tantivy.Index
    #: Every label of the space, committed or pending (to drop the space's labels from the label map).
    labels: set[int] = field(default_factory=set)
    #: The latest pending change of each label: its new text, or None to delete it.
    pending: dict[int, str | None] = field(default_factory=dict)
    #: Labels possibly in the committed index (a new label then needs no delete before its add).
    committed: set[int] = field(default_factory=set)


class LexicalIndex:
    """BM25 over the text of every plaintext cube, with an index and statistics per space, keyed by vector label."""

    def __init__(self, refresh_seconds: float) -> None:
        self._schema = _schema()
        #: Guards the maps below; held briefly, never during a commit.
        self._lock = threading.Lock()
        #: Serializes commits, so a space's batches are applied in order and by one writer at a time.
        self._commit_lock = threading.Lock()
        self._spaces: dict[str, _Space] = {}
        #: The space of each label (labels are unique across the server).
        self._space_of: dict[int, str] = {}
        self._dirty: set[str] = set()
        #: Whether writers freed their heap since the last trim, and when that was.
        self._heap_freed = False
        self._trimmed_at = time.monotonic()
        self._stop = threading.Event()
        self._refresh_seconds = refresh_seconds
        self._thread = threading.Thread(target=self._refresh_periodically, name="lexical-refresh", daemon=True)
        self._thread.start()

    # -- changes (from the catalog) ------------------------------------------------------

    def put(self, space_id: str, label: int, text: str) -> None:
        """Indexes one cube's text under its label (replacing what the label had, in any space)."""
        with self._lock:
            previous = self._space_of.get(label)
            if previous is not None and previous != space_id:
                self._forget(previous, label)
            space = self._spaces.get(space_id)
            if space is None:
                space = self._spaces[space_id] = _Space(self._new_index())
            self._space_of[label] = space_id
            space.labels.add(label)
            space.pending[label] = text
            self._dirty.add(space_id)

    def remove(self, labels: list[int]) -> None:
        with self._lock:
            for label in labels:
                space_id = self._space_of.pop(label, None)
                if space_id is not None:
                    self._forget(space_id, label)

    def drop_space(self, space_id: str) -> None:
        with self._lock:
            space = self._spaces.pop(space_id, None)
            self._dirty.discard(space_id)
            if space is not None:
                for label in space.labels:
                    self._space_of.pop(label, None)

    def _forget(self, space_id: str, label: int) -> None:
        """Queues the deletion of a label from a space (under the lock)."""
        space = self._spaces.get(space_id)
        if space is None:
            return
        space.labels.discard(label)
        space.pending[label] = None
        self._dirty.add(space_id)

    def _new_index(self) -> tantivy.Index:
        index = tantivy.Index(self._schema)
        # Searchers move to a new commit when told to: no watcher thread per commit.
        index.config_reader("Manual")
        return index

    def refresh(self) -> None:
        """Commits pending changes and makes them searchable now."""
        with self._commit_lock:
            with self._lock:
                taken = [(space_id, self._spaces[space_id]) for space_id in self._dirty]
                self._dirty.clear()
                batches = [(space_id, space, space.pending) for space_id, space in taken]
                for _, space in taken:
                    space.pending = {}
            for position, (_, space, changes) in enumerate(batches):
                try:
                    if self._commit(space, changes):
                        self._heap_freed = True
                except BaseException:
                    self._requeue(batches[position:])
                    raise

    def _commit(self, space: _Space, changes: dict[int, str | None]) -> bool:
        """Applies one space's changes with a writer opened for it alone, then shows them to searchers.

        False when there was nothing to apply (labels put and removed again before they were committed).
        """
        committed = space.committed
        if all(text is None and label not in committed for label, text in changes.items()):
            return False
        try:
            writer = space.index.writer(heap_size=_WRITER_HEAP_BYTES, num_threads=1)
            try:
                for label, text in changes.items():
                    if label in committed:
                        writer.delete_documents_by_term("label", label)
                    if text is not None:
                        writer.add_document(tantivy.Document(label=label, text=text))
                writer.commit()
            finally:
                # Releases the writer's heap, threads and the index lock now, not when it is collected.
                writer.wait_merging_threads()
            space.index.reload()
        except BaseException:
            # Whether the commit took is unknown: the retry deletes each label before adding it.
            committed.update(changes)
            raise
        for label, text in changes.items():
            if text is None:
                committed.discard(label)
            else:
                committed.add(label)
        return True

    def _requeue(self, taken: list[tuple[str, _Space, dict[int, str | None]]]) -> None:
        """Puts back changes a failed commit did not apply, under any that arrived since."""
        with self._lock:
            for space_id, space, changes in taken:
                if self._spaces.get(space_id) is not space:
                    continue
                space.pending = {**changes, **space.pending}
                self._dirty.add(space_id)

    def _refresh_periodically(self) -> None:
        while not self._stop.wait(self._refresh_seconds):
            try:
                self.refresh()
            except (ValueError, RuntimeError):
                log.exception("lexical index refresh failed; it is retried, and rebuilt from DuckDB at start-up")
            self._trim_heap()

    def _trim_heap(self) -> None:
        """Hands the heap of the writers since the last trim back to the system, at most every few seconds.

        The C allocator keeps a freed writer's tables resident in the arena of each thread that
        built one: over a burst of commits about 150 MB, a trim returns it for tens of milliseconds.
        """
        if _MALLOC_TRIM is None:
            return
        now = time.monotonic()
        with self._commit_lock:
            if not self._heap_freed or now - self._trimmed_at < _TRIM_SECONDS:
                return
            self._heap_freed = False
            self._trimmed_at = now
            _MALLOC_TRIM(0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    # -- search ------------------------------------------------------------------------

    def search(self, space_id: str, text: str, limit: int) -> list[tuple[int, float]]:
        """Up to ``limit`` (label, BM25 score) pairs of the space for the words of ``text``, best first."""
        words = _WORD.findall(text.lower())
        if not words or limit <= 0:
            return []
        with self._lock:
            space = self._spaces.get(space_id)
        if space is None:
            return []
        index = space.index
        searcher = index.searcher()
        hits = searcher.search(index.parse_query(" ".join(words), ["text"]), limit, count=False).hits
        if not hits:
            return []
        labels = searcher.fast_field_values("label", [address for _, address in hits])
        return [(int(label), float(score)) for (score, _), label in zip(hits, labels, strict=True) if label is not None]
