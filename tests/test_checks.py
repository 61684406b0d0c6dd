"""The argument rules every module shares (workbook/checks.py)."""

import numpy as np
import pytest

from workbook.checks import check_whole
from workbook.errors import WorkbookError


@pytest.mark.parametrize("value, minimum", [(0, 0), (5, 1), (np.int64(3), 3), (10**30, 1)])
def test_a_whole_number_at_or_above_the_minimum_passes(value, minimum):
    assert check_whole("n", value, minimum) is None


@pytest.mark.parametrize("value", [True, False, 2.0, 2.5, "2", None, -1])
def test_anything_else_is_refused_with_its_name_rule_and_value(value):
    with pytest.raises(WorkbookError, match=f"n must be a whole number >= 0, not {value!r}"):
        check_whole("n", value, 0)


def test_below_the_minimum_is_refused_and_the_caller_picks_the_error():
    class ShapeError(WorkbookError):
        pass

    with pytest.raises(ShapeError, match="page_size must be a whole number >= 1, not 0"):
        check_whole("page_size", 0, 1, ShapeError)
