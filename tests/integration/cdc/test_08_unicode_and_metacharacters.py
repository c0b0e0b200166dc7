"""08 · Unicode and SQL metacharacters in text (PostgreSQL and MariaDB).

Why it matters for billing: names of milestones, labor categories and keys end up on invoices
and in ERP rows. Clients are called Zoë, O'Brien and 株式会社; free text holds quotes,
semicolons, percent signs, backslashes and line breaks. Any lossy step (a latin-1 column, a
normalisation, an escaping bug, a 3-byte utf8 limit that drops emoji) shows up as a wrong
invoice line or a failed ERP write; a key with a quote must still be one key.

Asserts: every text (and a key with a quote and a semicolon) arrives byte-for-byte equal —
no Unicode normalisation, no escaping — including 4-byte characters and combining marks.
"""

from __future__ import annotations

from billsync.change import Op
from tests.integration.cdc.support import Throwaway, all_of, has_ops, of_key

TEXTS = (
    "Zoë's phase — 第一",
    "O'Brien; DROP TABLE x; --",
    "100% _wild_ \\ back\\slash",
    '"double" `tick` $1 :param ?',
    "tab\there\nnew line\r\nCRLF",
    "emoji 🧾💶 4-byte",
    "e\u0301 combining vs \u00e9",  # NFD and NFC side by side, both kept
    "עברית right-to-left",
)


def test_unicode_and_metacharacters(throwaway: Throwaway) -> None:
    t = throwaway
    src = t.source
    t.register()
    keys = [t.key() for _ in TEXTS]
    for key, value in zip(keys, TEXTS, strict=True):
        t.insert(key, text_value=value)
    odd_key = t.key("-O'Neil;--%")
    t.insert(odd_key, text_value="odd key")
    t.update(keys[0], **{src.text_col: TEXTS[-1]})

    events = t.consume_until(
        all_of(
            *(has_ops(k, Op.CREATE) for k in keys),
            has_ops(odd_key, Op.CREATE),
            has_ops(keys[0], Op.CREATE, Op.UPDATE),
        )
    )
    for key, value in zip(keys, TEXTS, strict=True):
        created = of_key(events, key)[0]
        assert created.after is not None
        assert getattr(created.after, src.text_col) == value
    (odd,) = of_key(events, odd_key)
    assert odd.after is not None and getattr(odd.after, src.key_col) == odd_key
    updated = of_key(events, keys[0])[1]
    assert updated.before is not None and updated.after is not None
    assert getattr(updated.before, src.text_col) == TEXTS[0]
    assert getattr(updated.after, src.text_col) == TEXTS[-1]
