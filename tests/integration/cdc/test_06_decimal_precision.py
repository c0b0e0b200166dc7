"""06 · Decimal precision (PostgreSQL and MariaDB).

Why it matters for billing: amounts and rates are money. A connector in ``double`` mode, or
an edge that goes through float, turns 0.10 into 0.1000000000000000055 and 99999999.99 into
100000000.0 — invoices off by cents that no reconciliation explains. The connectors run with
``decimal.handling.mode=precise`` (Avro decimal, scale 2) and the edge must hand out
``Decimal`` with the column's scale, exactly, up to the column's largest value.

Asserts: for zero, a cent, ten cents, a value whose float is inexact, the column maximum and
a value the database itself rounds at scale 2 (half away from zero), the typed row holds a
``Decimal`` equal to the database value, with exponent -2 (``str`` shows two places).
"""

from __future__ import annotations

from decimal import Decimal

from billsync.change import Op
from tests.integration.cdc.support import Throwaway, all_of, has_ops, of_key


def test_decimal_precision(throwaway: Throwaway) -> None:
    t = throwaway
    src = t.source
    t.register()
    written_expected = [
        ("0", "0.00"),
        ("0.01", "0.01"),
        ("0.10", "0.10"),
        ("1234.56", "1234.56"),
        ("0.3", "0.30"),  # 0.1 + 0.2 in float is not 0.3
        (str(src.decimal_max), str(src.decimal_max)),
        ("2.345", "2.35"),  # the database rounds to scale 2, half away from zero
    ]
    keys = [t.key() for _ in written_expected]
    for key, (written, _) in zip(keys, written_expected, strict=True):
        t.insert(key, amount=written)

    events = t.consume_until(all_of(*(has_ops(k, Op.CREATE) for k in keys)))
    for key, (_, expected) in zip(keys, written_expected, strict=True):
        (created,) = of_key(events, key)
        assert created.after is not None
        amount = getattr(created.after, src.decimal_col)
        assert type(amount) is Decimal
        assert str(amount) == expected
        assert amount.as_tuple().exponent == -2
