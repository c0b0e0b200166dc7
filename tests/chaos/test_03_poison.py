"""chaos 03 — poison records on a source topic go to ``billing.dlq``; the flow goes on.

Why it exists: SPEC 4 ("poison input goes to billing.dlq and the flow goes on") and SPEC 3
("nothing is dropped silently"). A CDC topic is written by Debezium, but anything with
producer rights can put bytes there, and a converter misconfiguration produces records
framed for another schema. Four kinds, produced with a plain producer onto
``psa.public.timesheets`` (the real source topic the flow reads):

- garbage bytes (no Confluent framing) — ``BadFraming``;
- magic byte 0 + schema id 0x7fffffff (registered nowhere) + bytes — ``UnknownSchemaId``;
- a valid Debezium Avro record of ``crm.crm.accounts`` (its own registered schema id), i.e.
  a well-formed record of the wrong schema — ``SchemaMismatch``;
- a real timesheets record cut short — ``UndecodableRecord``.

Each must appear in ``billing.dlq`` (read with the stock ``AvroDeserializer``, matched by
the topic/partition/offset we produced at) with its original key and value bytes, and a real
timesheet approved *after* them (a later offset of the same partition) must be billed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

from billsync.settings import Settings
from tests.chaos.kafka_io import DLQ, DlqReader, end_offset, produce, raw_records
from tests.e2e.harness import Erp, Flow, Sources
from tests.e2e.story import Story, billed

TOPIC = "psa.public.timesheets"
D = Decimal


def test_poison_goes_to_dlq_and_flow_goes_on(
    stack: Settings,
    make_flow: Callable[[], Flow],
    erp_of: Callable[[Flow], Erp],
    sources: Sources,
    prefix: str,
) -> None:
    story = Story(sources, prefix)
    story.world()
    flow = make_flow()
    flow.start()
    erp = erp_of(flow)
    erp.wait_tables(flow)
    reader = DlqReader(stack, end_offset(stack, DLQ))
    try:
        ((acc_key, account),) = raw_records(stack, "crm.crm.accounts", 1)
        ((_k, timesheet),) = raw_records(stack, TOPIC, 1)
        poison = {
            "BadFraming": (f"{prefix}-k1".encode(), b"\xde\xad\xbe\xef garbage " + prefix.encode()),
            "UnknownSchemaId": (
                f"{prefix}-k2".encode(),
                b"\x00" + (0x7FFFFFFF).to_bytes(4, "big") + prefix.encode(),
            ),
            "SchemaMismatch": (acc_key, account),
            "UndecodableRecord": (f"{prefix}-k4".encode(), timesheet[: len(timesheet) // 2]),
        }
        where = {kind: produce(stack, TOPIC, k, v) for kind, (k, v) in poison.items()}
        # a real change after the poison (a later offset of the same partition): billed
        story.s.insert("timesheets", [story._timesheet(50, "CON", "TM", "2.00", 1)])
        t0 = time.monotonic()
        erp.wait_lines({story.tkey(50): billed("200.00", "40.00")}, flow=flow,
                       what="the change after the poison")  # fmt: skip
        print(f"the change after the poison billed {time.monotonic() - t0:.1f}s after it")

        deadline = time.monotonic() + 60
        missing = list(poison)
        while missing and time.monotonic() < deadline:
            reader.poll(1.0)
            missing = [k for k in poison if reader.at(TOPIC, *where[k]) is None]
        assert not missing, f"not in {DLQ}: {missing} (produced at {where})"
        for kind, (key, value) in poison.items():
            record = reader.at(TOPIC, *where[kind])
            assert record is not None
            assert record["value"] == value, kind
            assert record["key"] == key, kind
            assert record["error_type"] == kind, (kind, record["error"])
            print(f"{kind} at {where[kind]}: {record['error'][:120]}")
        flow.check_alive()
    finally:
        reader.close()
