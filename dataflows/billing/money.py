"""Money and period arithmetic: Decimal, half-up, 2 places; periods are ``YYYY-MM``.

Every amount of SPEC section 2 passes through :func:`q2`. Floats never get near an amount:
:func:`q2` refuses them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def q2(value: Decimal | int) -> Decimal:
    """Round half-up to 2 decimal places (``2.345`` -> ``2.35``, ``-2.345`` -> ``-2.35``)."""
    if isinstance(value, float):  # defensive: a float here is a bug upstream
        raise TypeError("q2() takes Decimal or int, never float")
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def month_of(day: date | None) -> str | None:
    """The period ``YYYY-MM`` of a date (None when the date is unknown)."""
    if day is None:
        return None
    return f"{day.year:04d}-{day.month:02d}"


def utc_date(moment: datetime | None) -> date | None:
    """The calendar date of an aware timestamp in UTC (a naive one is taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).date()


def milestone_period(accepted_at: datetime | None) -> str | None:
    """A milestone's period everywhere: the month of ``accepted_at`` in UTC (SPEC 2)."""
    return month_of(utc_date(accepted_at))
