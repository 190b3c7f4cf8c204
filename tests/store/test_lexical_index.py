"""The lexical (BM25) index on its own: statistics per space, changes made visible by refresh, and
searches running while changes and commits do.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator

import pytest

from memos_grpc.store.lexical import LexicalIndex

GARDEN = {
    1: "the garden hose leaks near the shed",
    2: "a leaking garden hose wastes water every summer in the garden",
    3: "the shed roof needs new tiles before winter",
    4: "water the tomatoes in the morning",
    5: "the invoice for the new lawn mower is paid",
}


@pytest.fixture
def index() -> Iterator[LexicalIndex]:
    # Refreshed by the tests themselves: the background thread never gets its turn.
    lexical = LexicalIndex(refresh_seconds=3600)
    yield lexical
    lexical.close()


def labels(index: LexicalIndex, space: str, text: str, limit: int = 100) -> list[int]:
    return [label for label, _ in index.search(space, text, limit)]


def test_a_spaces_scores_ignore_other_spaces(index: LexicalIndex) -> None:
    for label, text in GARDEN.items():
        index.put("alpha", label, text)
    index.refresh()
    query = "garden hose water"
    before = index.search("alpha", query, 10)
    assert [label for label, _ in before] == [2, 1, 4]
    assert len({score for _, score in before}) == 3

    # Another tenant's corpus full of the query's words: it would make them common, lowering their weight.
    for n in range(300):
        index.put("beta", 1000 + n, f"garden hose water report number {n}")
    index.put("beta", 2000, GARDEN[1])
    index.refresh()

    assert index.search("alpha", query, 10) == before
    # The same text scores by its own space's statistics.
    alpha_score = dict(before)[1]
    beta_score = dict(index.search("beta", query, 400))[2000]
    assert beta_score != pytest.approx(alpha_score)


def test_changes_show_after_refresh(index: LexicalIndex) -> None:
    index.put("alpha", 1, "quarterly report due friday")
    index.put("alpha", 2, "the printer jams on friday")
    assert index.search("alpha", "friday", 10) == []
    index.refresh()
    assert sorted(labels(index, "alpha", "friday")) == [1, 2]

    # Replacing a label's text drops its old words.
    index.put("alpha", 1, "quarterly report due monday")
    index.refresh()
    assert labels(index, "alpha", "friday") == [2]
    assert labels(index, "alpha", "monday") == [1]

    index.remove([2])
    index.refresh()
    assert labels(index, "alpha", "friday printer") == []

    # A label put again in another space moves there.
    index.put("beta", 1, "quarterly report due monday")
    index.refresh()
    assert labels(index, "alpha", "monday") == []
    assert labels(index, "beta", "monday") == [1]

    index.drop_space("beta")
    assert index.search("beta", "monday", 10) == []
    index.refresh()
    assert index.search("beta", "monday", 10) == []
    # A space made again starts empty, and the dropped space's labels are forgotten.
    index.put("beta", 7, "monday standup notes")
    index.remove([1])
    index.refresh()
    assert labels(index, "beta", "monday") == [7]


def test_a_label_removed_before_refresh_never_comes_back(index: LexicalIndex) -> None:
    index.put("alpha", 1, "zorblattic valve repair")
    index.remove([1])
    index.refresh()
    assert index.search("alpha", "zorblattic", 10) == []

    index.put("alpha", 2, "zorblattic valve inspection")
    index.refresh()
    index.put("alpha", 2, "zorblattic valve inspection passed")
    index.remove([2])
    index.refresh()
    index.refresh()
    assert index.search("alpha", "zorblattic", 10) == []

    # Removed from its first space before refresh, then put in another: only the second holds it.
    index.put("alpha", 3, "zorblattic gasket")
    index.put("beta", 3, "zorblattic gasket")
    index.refresh()
    assert index.search("alpha", "zorblattic", 10) == []
    assert labels(index, "beta", "zorblattic") == [3]


def test_search_of_an_unknown_space_or_without_words_is_empty(index: LexicalIndex) -> None:
    index.put("alpha", 1, "the weekly sync moved to thursday")
    index.refresh()
    assert index.search("nowhere", "thursday", 10) == []
    assert index.search("alpha", "?! --", 10) == []
    assert index.search("alpha", "thursday", 0) == []
    assert labels(index, "alpha", "Thursday's SYNC") == [1]


def test_concurrent_searches_puts_and_refreshes_stay_consistent() -> None:
    index = LexicalIndex(refresh_seconds=0.005)
    spaces = ["s0", "s1", "s2"]
    ever_in: dict[str, set[int]] = {space: set() for space in spaces}
    expected: dict[int, tuple[str, str]] = {}
    errors: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def guarded(body: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                body()
            except BaseException as error:
                errors.append(error)

        return threading.Thread(target=run)

    def write() -> None:
        rng = random.Random(11)
        for step in range(400):
            label = rng.randrange(60)
            if rng.random() < 0.2:
                index.remove([label])
                expected.pop(label, None)
            else:
                space = rng.choice(spaces)
                ever_in[space].add(label)
                text = f"shared word{step} tag{label}"
                index.put(space, label, text)
                expected[label] = (space, text)
            if step % 50 == 0:
                index.refresh()
        writing.clear()

    def search() -> None:
        rng = random.Random(threading.get_ident())
        while writing.is_set():
            space = rng.choice(spaces)
            for label, score in index.search(space, "shared tag1 tag2", 100):
                assert label in ever_in[space]
                assert score > 0

    def refresh() -> None:
        while writing.is_set():
            index.refresh()

    threads = [guarded(write), guarded(search), guarded(search), guarded(refresh)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        index.refresh()
        assert errors == []
        for space in spaces:
            live = {label for label, (where, _) in expected.items() if where == space}
            assert set(labels(index, space, "shared", 1000)) == live
        for label, (space, text) in expected.items():
            assert labels(index, space, text.split()[1]) == [label]
    finally:
        index.close()
