"""A record the edge cannot read becomes a dead letter with its original bytes and origin."""

from __future__ import annotations

import pytest

from billsync.errors import RecordContext, RecordError
from dataflows.cdc.deadletter import dead_letter
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.cdc.schemas import DictSchemaSource

DLQ_FIELDS = {"error", "error_type", "topic", "partition", "offset", "key", "value", "timestamp"}


def test_dead_letter_of_a_bad_magic_byte() -> None:
    decoder = ChangeDecoder(DictSchemaSource())
    with pytest.raises(RecordError) as info:
        decoder.decode("crm.crm.accounts", 2, 41, b"key-bytes", b"\x07garbage")
    letter = dead_letter(info.value, now_ms=1_700_000_000_000)
    assert set(letter) == DLQ_FIELDS
    assert letter["error_type"] == "BadFraming"
    assert "magic byte is 0x07" in letter["error"] and "crm.crm.accounts[2]@41" in letter["error"]
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("crm.crm.accounts", 2, 41)
    assert letter["key"] == b"key-bytes" and letter["value"] == b"\x07garbage"
    assert letter["timestamp"] == 1_700_000_000_000


def test_dead_letter_of_a_later_record_error_uses_its_class_name() -> None:
    err = RecordError("rule input broken", RecordContext(topic="t", partition=0, offset=1))
    letter = dead_letter(err)
    assert letter["error_type"] == "RecordError"
    assert letter["key"] is None and letter["value"] is None
    assert isinstance(letter["timestamp"], int) and letter["timestamp"] > 1_700_000_000_000
