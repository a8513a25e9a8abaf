"""core.humanize: the numbers people read on the dashboard and in `manage.py watch` — short,
separated, and still the number they stand for (round-trips within the stated precision)."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import humanize

FAST = settings(max_examples=300, deadline=None)
EVERYDAY = (st.floats(min_value=1e-4, max_value=1e15, exclude_max=True)
            | st.floats(min_value=-1e15, max_value=-1e-4, exclude_min=True))
THOUSANDS = r"\d{1,3}(,\d{3})*"


@pytest.mark.parametrize(("value", "digits", "text"), [
    (2.9872450828552246, 4, "2.987"), (2.3909203547906803, 4, "2.391"), (0.3076923076923077, 3, "0.308"),
    (17.4421, 4, "17.44"), (9.9996, 4, "10.00"), (999.96, 4, "1,000"), (32811.4, 4, "32,811"),
    (0.9, 4, "0.9000"), (-2.5, 4, "-2.500"), (0, 4, "0"), (-0.0, 4, "0"), (1e-7, 4, "1.000e-07"),
])
def test_significant_examples(value, digits, text):
    assert humanize.significant(value, digits) == text


@pytest.mark.parametrize(("function", "value", "text"), [
    (humanize.scientific, 0.0002, "2.00e-04"), (humanize.percent, 12.345, "12.3%"), (humanize.percent, -0.01, "0.0%"),
    (humanize.signed_percent, -3.04, "-3.0%"), (humanize.signed_percent, 12.3, "+12.3%"),
    (humanize.signed_percent, 0.01, "0.0%"), (humanize.signed, 0.1494, "+0.1494"), (humanize.signed, 0, "0"),
    (humanize.duration, 5, "5s"), (humanize.duration, 990, "16m 30s"), (humanize.duration, 3900, "1h 05m"),
    (humanize.duration, 90000, "25h 00m"), (humanize.duration, -3, "0s"), (humanize.duration, 3599.6, "1h 00m"),
    (humanize.money, Decimal("1234.5"), "$1,234.50"), (humanize.money, -2, "-$2.00"),
    (humanize.money, Decimal("-0.001"), "$0.00"), (humanize.money, Decimal("0"), "$0.00"),
    (humanize.integer, 32811, "32,811"), (humanize.integer, 47654.4, "47,654"),
])
def test_examples(function, value, text):
    assert function(value) == text


@pytest.mark.parametrize("function", [humanize.significant, humanize.scientific, humanize.percent,
                                      humanize.signed_percent, humanize.signed, humanize.integer, humanize.duration,
                                      humanize.money])
def test_missing_is_a_dash_and_not_a_number_says_so(function):
    assert function(None) == "—"
    assert function(math.nan) == "n/a"
    assert function(math.inf) == "n/a"


def unformat(text: str) -> float:
    return float(text.replace(",", ""))


@FAST
@given(EVERYDAY, st.integers(min_value=2, max_value=6))
def test_significant_is_the_number_to_its_digits(value, digits):
    text = humanize.significant(value, digits)
    assert "e" not in text and re.fullmatch(rf"-?{THOUSANDS}(\.\d+)?", text), text
    assert math.isclose(unformat(text), value, rel_tol=10 ** (1 - digits))
    shown = re.sub(r"[^0-9]", "", text).lstrip("0")
    integer_digits = len(re.sub(r"[^0-9]", "", text.split(".")[0]).lstrip("0"))
    assert len(shown) <= max(digits, integer_digits)


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_percent_has_one_decimal_and_separators(value):
    # One decimal below 1,000 %, none from there (a tenth of a percent is noise): at most four
    # significant digits before the thousands, like every other figure people read.
    text = humanize.percent(value)
    if abs(unformat(text[:-1])) >= 1000:
        assert re.fullmatch(rf"-?{THOUSANDS}%", text), text
        assert abs(unformat(text[:-1]) - value) <= 0.5 + abs(value) * 1e-12
    else:
        assert re.fullmatch(rf"-?{THOUSANDS}\.\d%", text), text
        assert abs(unformat(text[:-1]) - value) <= 0.05 + abs(value) * 1e-12
    signed = humanize.signed_percent(value)
    assert signed.startswith("+") == (unformat(text[:-1]) > 0)


@FAST
@given(st.floats(min_value=0, max_value=10 ** 7, allow_nan=False))
def test_duration_reads_back_to_the_second_below_an_hour_and_the_minute_above(seconds):
    text = humanize.duration(seconds)
    match = re.fullmatch(r"(?:(\d+)h (\d{2})m|(?:(\d+)m )?(\d{1,2})s)", text)
    assert match, text
    if match.group(1) is not None:
        assert int(match.group(2)) < 60
        assert abs(int(match.group(1)) * 3600 + int(match.group(2)) * 60 - seconds) <= 30.5
    else:
        assert int(match.group(4)) < 60
        assert abs(int(match.group(3) or 0) * 60 + int(match.group(4)) - seconds) <= 0.5


@FAST
@given(st.decimals(min_value=-10 ** 9, max_value=10 ** 9, allow_nan=False, allow_infinity=False, places=4))
def test_money_is_dollars_to_the_cent(amount):
    text = humanize.money(amount)
    assert re.fullmatch(rf"-?\${THOUSANDS}\.\d{{2}}", text), text
    value = Decimal(text.replace("$", "").replace(",", ""))
    assert abs(value - amount) <= Decimal("0.005")


@FAST
@given(st.integers(min_value=-10 ** 15, max_value=10 ** 15))
def test_integers_are_separated_by_thousands(number):
    text = humanize.integer(number)
    assert re.fullmatch(rf"-?{THOUSANDS}", text) and int(text.replace(",", "")) == number


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@FAST
@given(JSON)
def test_rounded_floats_keep_the_shape_and_are_strict_json(value):
    rounded = humanize.rounded_floats(value)
    json.dumps(rounded, allow_nan=False)  # NaN and infinities became "n/a"
    for number in floats_in(rounded):
        four = float(f"{number:.4g}")
        # Four significant digits at most, except where that would overflow to infinity.
        assert four == number or not math.isfinite(four)
    if isinstance(value, dict):
        assert rounded.keys() == value.keys()


def floats_in(value):
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from floats_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from floats_in(item)
