import math

import pytest

from controller.core.numbers import finite_float


@pytest.mark.parametrize("value, expected", [(0, 0.0), (52, 52.0), (-3.5, -3.5), (2**70, float(2**70))])
def test_finite_numbers_come_back_as_floats(value, expected):
    result = finite_float(value)
    assert result == expected and type(result) is float


@pytest.mark.parametrize("value", [True, False, None, "52", [52], {"v": 1}, math.nan, math.inf, -math.inf,
                                   10**400, -(10**400)])
def test_anything_else_is_none_and_never_raises(value):
    assert finite_float(value) is None
