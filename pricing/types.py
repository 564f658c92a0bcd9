"""Array aliases and identifier types shared by the numeric packages.

Every public array function in ``pricing`` and ``portfolio`` states the shape
and dtype of its arguments with these aliases.
"""

from __future__ import annotations

from typing import NewType, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "BoolArray1D",
    "F64Array1D",
    "F64Array2D",
    "I64Array1D",
    "InstrumentId",
    "Symbol",
    "U8Array1D",
]

F64Array1D: TypeAlias = npt.NDArray[np.float64]
F64Array2D: TypeAlias = npt.NDArray[np.float64]
I64Array1D: TypeAlias = npt.NDArray[np.int64]
U8Array1D: TypeAlias = npt.NDArray[np.uint8]
BoolArray1D: TypeAlias = npt.NDArray[np.bool_]

InstrumentId = NewType("InstrumentId", str)
"""Stable instrument identifier, ``<SYMBOL>.<VENUE>`` (``AAPL.XNAS``)."""

Symbol = NewType("Symbol", str)
"""Trading symbol as clients name it on the wire (``AAPL``, ``ESZ6``)."""
