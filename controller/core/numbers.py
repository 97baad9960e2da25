"""Numbers from outside (a JSON frame, a settings document, the state file), checked once.

``math.isfinite`` raises OverflowError on an int too large for a float (a 400-digit JSON
number parses as one), so every check of a number from outside goes through
:func:`finite_float`, which never raises.
"""

from __future__ import annotations

import math
from typing import Any


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float; None for a non-number, a bool, NaN, +/-inf, or an int too
    large for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond ~1.8e308
        return None
    return number if math.isfinite(number) else None
