"""How many decimals a test figure deserves: as many as its bootstrap CI can tell apart.

On 48 test items an accuracy CI is ~0.3 wide, so a fourth decimal is noise dressed as a result.
Figures are shown to the first significant digit of the CIs' typical (median) width, between 2
and 4 decimals; where no CI has a width (no bootstrap, or every resample scored the same), one
item in ``n_test`` sets the resolution instead. metrics.json keeps full precision.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MIN_DECIMALS, MAX_DECIMALS = 2, 4


def supported_decimals(table: pd.DataFrame) -> int:
    """Decimals for every figure of a comparison table (``ci_low``, ``ci_high``, ``n_test``)."""
    if table.empty:
        return MAX_DECIMALS
    widths = (table["ci_high"] - table["ci_low"]).to_numpy(dtype=float)
    widths = widths[np.isfinite(widths) & (widths > 0)]
    scale = float(np.median(widths)) if widths.size else 1.0 / max(int(table["n_test"].max()), 1)
    return int(min(MAX_DECIMALS, max(MIN_DECIMALS, -math.floor(math.log10(scale)))))


def fmt(value: float | None, decimals: int) -> str:
    """A figure with ``decimals`` decimals, or "-" where there is none (None or NaN)."""
    if value is None or pd.isna(value):
        return "-"
    return f"{float(value):.{decimals}f}"
