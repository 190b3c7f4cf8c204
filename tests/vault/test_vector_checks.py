"""A batch's client vectors are checked together (``unit_vectors``) exactly as one by one (``check_vector``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from memos_grpc.errors import InvalidArgumentError
from memos_grpc.vault.validation import check_vector, unit_vectors

DIMENSION = 16


def test_the_batch_gives_each_vector_check_vector_gives_it() -> None:
    rng = np.random.default_rng(7)
    values = [list(rng.standard_normal(DIMENSION) * scale) for scale in (1e-30, 1e-3, 1.0, 1e3, 3e38)]
    batch = unit_vectors(values, DIMENSION)
    for given, unit in zip(values, batch, strict=True):
        assert unit is not None
        assert unit.dtype == np.float32
        np.testing.assert_allclose(unit, check_vector(given, DIMENSION), rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "bad",
    [
        [0.0] * DIMENSION,
        [math.nan] + [1.0] * (DIMENSION - 1),
        [math.inf] + [1.0] * (DIMENSION - 1),
        [1.0] * (DIMENSION - 1),
        [],
    ],
    ids=["zeros", "nan", "inf", "short", "absent"],
)
def test_a_vector_check_vector_refuses_is_left_for_it(bad: list[float]) -> None:
    good = [1.0] * DIMENSION
    units = unit_vectors([good, bad, good], DIMENSION)
    assert units[0] is not None and units[2] is not None
    assert units[1] is None
    with pytest.raises(InvalidArgumentError):
        check_vector(bad, DIMENSION)
