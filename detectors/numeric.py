"""Small numeric helpers on the detectors' hot path.

:func:`nan_to_num` is :func:`numpy.nan_to_num` for the detectors' float arrays, several times
faster on the small arrays the worker's goods groups hand the detectors (a few lanes a call):
numpy's version looks every infinity up with ``isposinf``/``isneginf`` and ``finfo`` on every
call, and was 18 % of the worker's detector path (``docs/performance.md``). Same results, to the
bit, for every input (a property test holds it against numpy's); anything but a float array of
one or more dimensions, or a call with explicit infinity fills, goes to numpy's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_FLOAT_MAX = {np.dtype(t): float(np.finfo(t).max) for t in (np.float16, np.float32, np.float64)}


def nan_to_num(x: Any, *, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> Any:
    """A copy of ``x`` with NaN replaced by ``nan`` and infinities by ``posinf`` / ``neginf``
    (the dtype's largest finite magnitude by default), as :func:`numpy.nan_to_num`.

    Examples
    --------
    >>> nan_to_num(np.array([1.0, np.nan, np.inf, -np.inf]), nan=-1.0, posinf=9.0)
    array([ 1.00000000e+000, -1.00000000e+000,  9.00000000e+000, -1.79769313e+308])
    >>> nan_to_num(np.array([2, 3]))
    array([2, 3])
    """
    a = np.asarray(x)
    big = _FLOAT_MAX.get(a.dtype)
    if big is None or a.ndim == 0 or posinf is not None or neginf is not None:
        # ints and bools (returned as they are), complex, scalars, explicit infinity fills: numpy's
        return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)
    out = np.minimum(np.maximum(a, -big), big)  # a new array: infinities to the largest magnitude, NaN kept
    np.copyto(out, nan, where=np.isnan(out))
    return out
