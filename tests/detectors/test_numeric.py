"""The detectors' fast ``nan_to_num`` gives numpy's results, to the bit, for every input."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from transitwatch.detectors.numeric import nan_to_num

FILL = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@given(
    x=hnp.arrays(dtype=st.sampled_from([np.float64, np.float32, np.float16]),
                 shape=hnp.array_shapes(min_dims=0, max_dims=2, max_side=6),
                 elements={"allow_nan": True, "allow_infinity": True}),
    nan=st.floats(allow_nan=True, allow_infinity=True), posinf=FILL, neginf=FILL,
)
def test_same_as_numpy_for_float_arrays(x, nan, posinf, neginf):
    with np.errstate(over="ignore"):  # a fill too big for float16 or float32 becomes inf in both
        want = np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)
        got = nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(want))  # -0.0 stays -0.0


@given(x=st.one_of(hnp.arrays(dtype=st.sampled_from([np.int64, np.bool_]), shape=hnp.array_shapes(max_dims=1)),
                   st.floats(allow_nan=True, allow_infinity=True), st.lists(st.floats(), max_size=4)))
def test_other_inputs_as_numpy_does(x):
    want = np.nan_to_num(x)
    got = nan_to_num(x)
    assert np.array_equal(got, want, equal_nan=True) and np.asarray(got).dtype == np.asarray(want).dtype


def test_a_copy_never_the_input():
    x = np.array([1.0, np.nan])
    y = nan_to_num(x)
    y[0] = 5.0
    assert x[0] == 1.0 and np.isnan(x[1])
    z = np.array([1.0, 2.0])
    assert nan_to_num(z) is not z
