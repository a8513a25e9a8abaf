"""Numbers for people: the one place the dashboard, `manage.py watch` and the analyser's verdicts
turn losses, percentages, durations, money and counts into text.

Pure functions (no Django, no I/O), total on their domain: None is "—", NaN and infinities
are "n/a" (a diverged loss is shown, not raised on). tests/dashboard/test_humanize.py checks
them with Hypothesis.

    significant(2.9872450828552246)   -> "2.987"
    significant(0.3076923076923077, 3) -> "0.308"   significant(0.09, 3, trim=True) -> "0.09"
    significant(32811.4)              -> "32,811"
    scientific(0.0002)                -> "2.00e-04"
    percent(12.345)                   -> "12.3%"      signed_percent(-3.04) -> "-3.0%"
    duration(990)                     -> "16m 30s"    duration(3900) -> "1h 05m"
    money(Decimal("1234.5"))          -> "$1,234.50"
    integer(32811)                    -> "32,811"
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

MISSING = "—"
NOT_A_NUMBER = "n/a"
MINUS = "-"  # ASCII, so a copied figure pastes into a shell or a spreadsheet as a number


def _finite(value: Any) -> float | None:
    """The value as a float, or None when it is missing; NaN and infinities pass through."""
    if value is None or isinstance(value, bool):
        return None
    return float(value)


def significant(value: float | int | Decimal | None, digits: int = 4, *, trim: bool = False) -> str:
    """`digits` significant digits, no exponent for everyday magnitudes, thousands separated.

    Losses, perplexities, epochs, grad norms: 2.9872450828552246 -> "2.987", 17.4421 -> "17.44".
    Numbers with more integer digits than `digits` are rounded to a whole number ("32,811");
    tiny ones (below 1e-4) fall back to scientific() so they do not read as zero, and so do
    astronomical ones (1e15 and up: a diverged loss) so they stay short. `trim` drops trailing
    zeros (epochs: 0.09, not 0.0900); losses keep them, so a column's figures line up.
    """
    number = _finite(value)
    if number is None:
        return MISSING
    if not math.isfinite(number):
        return NOT_A_NUMBER
    if number == 0:
        return "0"
    if abs(number) < 1e-4 or abs(number) >= 1e15:
        return scientific(number, digits - 1)
    magnitude = math.floor(math.log10(abs(number)))
    decimals = max(0, digits - 1 - magnitude)
    rounded = round(number, decimals)
    # Rounding can carry into a new digit (9.9996 -> 10.000): one decimal fewer then.
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > magnitude and decimals > 0:
        decimals -= 1
    text = f"{rounded:,.{decimals}f}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    return _signed(text)


def scientific(value: float | None, decimals: int = 2) -> str:
    """Learning rates and other small quantities: 0.0002 -> "2.00e-04"."""
    number = _finite(value)
    if number is None:
        return MISSING
    if not math.isfinite(number):
        return NOT_A_NUMBER
    if number == 0:
        return "0"  # a learning rate at the end of its schedule, not "0.00e+00"
    return _signed(f"{number:.{max(0, decimals)}e}")


def percent(value: float | Decimal | None, decimals: int = 1) -> str:
    """A percentage (already ×100): 12.345 -> "12.3%"; 1,000 % and more without decimals
    ("1,234%"), where a tenth of a percent is noise."""
    number = _finite(value)
    if number is None:
        return MISSING
    if not math.isfinite(number):
        return NOT_A_NUMBER
    if abs(round(number, decimals)) >= 1000:
        decimals = 0
    return _signed(f"{number:,.{decimals}f}%")


def signed_percent(value: float | None, decimals: int = 1) -> str:
    """A change in percent with its sign: 12.3 -> "+12.3%", -3.04 -> "-3.0%", 0.01 -> "0.0%"."""
    return _plus(percent(value, decimals))


def signed(value: float | None, digits: int = 4) -> str:
    """A difference with its sign: 0.1494 -> "+0.1494", -3.2 -> "-3.2"."""
    return _plus(significant(value, digits))


def integer(value: int | float | Decimal | None) -> str:
    """A count with thousands separators: 32811 -> "32,811"."""
    number = _finite(value)
    if number is None:
        return MISSING
    if not math.isfinite(number):
        return NOT_A_NUMBER
    return _signed(f"{round(number):,d}")


def duration(seconds: float | None) -> str:
    """A length of time to the second below an hour, to the minute above:
    5 -> "5s", 990 -> "16m 30s", 3900 -> "1h 05m", 90000 -> "25h 00m". Negative is "0s"."""
    number = _finite(seconds)
    if number is None:
        return MISSING
    if not math.isfinite(number):
        return NOT_A_NUMBER
    total = max(0, int(round(number)))
    if total >= 3600:
        minutes_total = int(round(total / 60))
        hours, minutes = divmod(minutes_total, 60)
        return f"{hours}h {minutes:02d}m"
    minutes, secs = divmod(total, 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def money(value: Decimal | float | int | None) -> str:
    """Dollars to the cent, thousands separated: Decimal("1234.5") -> "$1,234.50", -2 -> "-$2.00"."""
    if value is None or isinstance(value, bool):
        return MISSING
    amount = value if isinstance(value, Decimal) else Decimal(str(float(value)))
    if not amount.is_finite():
        return NOT_A_NUMBER
    try:
        cents = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than the context holds: no cents to speak of
        cents = amount
    if cents == 0:
        cents = abs(cents)  # no "-$0.00"
    text = f"${abs(cents):,.2f}"
    return MINUS + text if cents < 0 else text


def change(before: float | None, after: float | None, digits: int = 4) -> str:
    """"before → after": "2.998 → 2.859"."""
    return f"{significant(before, digits)} → {significant(after, digits)}"


def rounded_floats(value: Any, digits: int = 4) -> Any:
    """A JSON-like value with every float rounded to `digits` significant digits (for showing a
    payload to people; the stored payload keeps its full precision). NaN/inf become "n/a"."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return NOT_A_NUMBER
        if value == 0:
            return 0.0
        rounded = float(f"{value:.{digits}g}")
        return rounded if math.isfinite(rounded) else value  # 1.7976931348623157e308 rounds up to inf
    if isinstance(value, dict):
        return {key: rounded_floats(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded_floats(item, digits) for item in value]
    return value


def _signed(text: str) -> str:
    """Python's text of a number, less the sign of a value that rounded to zero ("-0.0%")."""
    if text.startswith("-") and not any(ch in "123456789" for ch in text.split("e")[0]):
        return text[1:]
    return text


def _plus(text: str) -> str:
    """A "+" in front of a positive figure; zero, negatives, "—" and "n/a" as they are."""
    if text in (MISSING, NOT_A_NUMBER) or text.startswith(MINUS):
        return text
    return text if not any(ch in "123456789" for ch in text.split("e")[0]) else "+" + text
