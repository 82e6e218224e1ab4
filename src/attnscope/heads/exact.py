"""Exact sums for partial states: floats kept as int64 counts of 2**-32 units.

Each sentence's contribution is rounded once, where it is computed; integer sums do not depend on the
order of merging, so local and distributed runs give the same numbers bit for bit. (The same scale as
the corpus protocol's ``fixed_point``; resolution 2.3e-10, room for 2.1e9 units of 1.)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

SCALE = float(1 << 32)


def to_units(value: float | NDArray[np.floating]) -> NDArray[np.int64]:
    """A float (array) as int64 units of 2**-32."""
    return np.asarray(np.rint(np.asarray(value, dtype=np.float64) * SCALE), dtype=np.int64)


def from_units(value: NDArray[np.int64]) -> NDArray[np.float64]:
    """Units back to floats."""
    return np.asarray(value, dtype=np.float64) / SCALE


def zeros(*shape: int) -> NDArray[np.int64]:
    """An all-zero sum of the given shape."""
    return np.zeros(shape, dtype=np.int64)
