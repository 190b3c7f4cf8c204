"""The lexical (BM25) index of plaintext cubes: tantivy, in memory, fed by the search catalog.

Every cube the catalog learns of (after each commit, and from DuckDB at
start-up) is indexed under its vector label; every cube it forgets is
deleted. Like the catalog, the index is derived and rebuilt at start-up, so
it needs no files of its own. A tantivy commit costs about 20 ms, so changes
are committed by a background thread at most every
``lexical_refresh_seconds``: a new cube is found lexically within that
interval (dense search finds it at once). A deleted cube never comes back
meanwhile: hits go through the catalog, which forgets it at its commit.
"""

from __future__ import annotations

import logging
import re
import threading

import tantivy

log = logging.getLogger(__name__)

#: tantivy's English tokenizer: lower case, stop at punctuation, Porter stemming.
_TOKENIZER = "en_stem"
#: What a query keeps: words (the query parser's operators and quotes are not for callers to use).
_WORD = re.compile(r"\w+", re.UNICODE)
#: Heap tantivy's writer may use before it flushes a segment.
_WRITER_HEAP_BYTES = 64 * 1024 * 1024


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("space", tokenizer_name="raw")
    builder.add_integer_field("label", stored=True, indexed=True, fast=True)
    builder.add_text_field("text", tokenizer_name=_TOKENIZER)
    return builder.build()


class LexicalIndex:
    """BM25 over the text of every plaintext cube, per space, keyed by vector label."""

    def __init__(self, refresh_seconds: float) -> None:
        self._schema = _schema()
        self._index = tantivy.Index(self._schema)
        self._writer = self._index.writer(heap_size=_WRITER_HEAP_BYTES, num_threads=1)
        self._lock = threading.Lock()
        self._dirty = False
        self._stop = threading.Event()
        self._refresh_seconds = refresh_seconds
        self._thread = threading.Thread(target=self._refresh_periodically, name="lexical-refresh", daemon=True)
        self._thread.start()

    # -- changes (from the catalog) ------------------------------------------------------

    def put(self, space_id: str, label: int, text: str) -> None:
        """Indexes one cube's text under its label (replacing what the label had)."""
        with self._lock:
            self._writer.delete_documents_by_term("label", label)
            self._writer.add_document(tantivy.Document(space=space_id, label=label, text=text))
            self._dirty = True

    def remove(self, labels: list[int]) -> None:
        if not labels:
            return
        with self._lock:
            for label in labels:
                self._writer.delete_documents_by_term("label", label)
            self._dirty = True

    def drop_space(self, space_id: str) -> None:
        with self._lock:
            self._writer.delete_documents_by_term("space", space_id)
            self._dirty = True

    def refresh(self) -> None:
        """Commits pending changes and makes them searchable now."""
        with self._lock:
            if not self._dirty:
                return
            self._writer.commit()
            self._dirty = False
        self._index.reload()

    def _refresh_periodically(self) -> None:
        while not self._stop.wait(self._refresh_seconds):
            try:
                self.refresh()
            except (ValueError, RuntimeError):
                log.exception("lexical index refresh failed; it is rebuilt from DuckDB at start-up")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    # -- search ------------------------------------------------------------------------

    def search(self, space_id: str, text: str, limit: int) -> list[tuple[int, float]]:
        """Up to ``limit`` (label, BM25 score) pairs of the space for the words of ``text``, best first."""
        words = _WORD.findall(text.lower())
        if not words or limit <= 0:
            return []
        query = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Must, tantivy.Query.term_query(self._schema, "space", space_id)),
                (tantivy.Occur.Must, self._index.parse_query(" ".join(words), ["text"])),
            ]
        )
        searcher = self._index.searcher()
        return [
            (int(searcher.doc(address)["label"][0]), float(score))
            for score, address in searcher.search(query, limit).hits
        ]
