"""11 · Transaction metadata: one source transaction over two tables (PostgreSQL and MariaDB).

Why it matters for billing: SPEC 4 wants every source transaction applied whole — a project
put on hold and its time approved in one PSA transaction must never bill, not even for a
moment. The flow can only do that if the edge tells it which changes form a transaction and
when it is complete: Debezium's ``provide.transaction.metadata`` (on in the shipped templates)
writes a ``transaction`` block on every change and a BEGIN and an END (with the events per
table) to ``<prefix>.transaction``. On PostgreSQL those ids are ``"<xid>:<lsn of the
record>"`` — different on BEGIN, each change and END — so the edge must reduce them to the
xid for the markers to match their changes; on MariaDB they are the GTID (no setting needed:
MariaDB always writes GTIDs).

Asserts, for one transaction writing two tables on each source: a snapshot read carries no
transaction; every change of the transaction has the same ``TxRef.id`` and ``total_order``
1..n in statement order; exactly one BEGIN and one END with that id, BEGIN first; END's
``event_count`` is the number of changes and its data collections are the changes'
``Change.collection`` with their counts; the Kafka key of each marker is ``{id}`` with the id
its value carries. PostgreSQL: one ``commit_lsn`` for the whole transaction and commit order
= statement order; MariaDB: the id is the changes' GTID.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from io import BytesIO
from typing import Any

from fastavro import parse_schema, schemaless_reader
from sqlalchemy import text

from billsync.change import Change, Op, TxMarker, transaction_topic
from dataflows.cdc.schemas import RegistrySchemaSource
from dataflows.cdc.transaction import transaction_id
from dataflows.cdc.wire import HEADER_SIZE, schema_id_of
from tests.integration.cdc.conftest import MakeThrowaway
from tests.integration.cdc.support import CRM, PSA, Event, Throwaway, of_key


def of_keys(events: list[Event], keys: list[str]) -> list[Change]:
    return [e for e in events if isinstance(e, Change) and e.key in keys]


# the second table of each source and how to insert into / clean it (names from this module)
SECOND = {
    "psa": (
        "projects",
        "project_id",
        "INSERT INTO projects (project_id, code, name, account_id, contract_id, legal_entity) "
        "VALUES (:k, 'PRJ-TX', 'tx', 'A-CDC', 'CON-CDC', 'UK-LTD')",
    ),
    "crm": (
        "contract_amendments",
        "amendment_id",
        "INSERT INTO contract_amendments (amendment_id, contract_id, status, effective_date) "
        "VALUES (:k, 'CON-CDC', 'pending', '2025-05-01')",
    ),
}


def _avro(value: bytes, schemas: RegistrySchemaSource) -> dict[str, Any]:
    schema = parse_schema(schemas.fetch(schema_id_of(value)), named_schemas={})
    stream = BytesIO(value)
    stream.seek(HEADER_SIZE)
    record: dict[str, Any] = schemaless_reader(stream, schema, None)
    return record


def _one_transaction(t: Throwaway) -> list[str]:
    """Insert into the scenario table, insert into the second table, update the first row:
    one source transaction, three changes, two tables. Returns the keys in statement order."""
    _, _, insert_second = SECOND[t.source.id]
    first, second = t.key("-tx"), t.key("-tx2")
    with t.engine.begin() as conn:
        conn.execute(text(t.source.insert_sql), {"k": first, "t": "tx", "d": Decimal("10.00")})
        conn.execute(text(insert_second), {"k": second})
        conn.execute(
            text(f"UPDATE {t.source.table} SET {t.source.text_col} = 'tx-upd' "
                 f"WHERE {t.source.key_col} = :k"),
            {"k": first},
        )  # fmt: skip
    return [first, second, first]


def _check_source(t: Throwaway, schemas: RegistrySchemaSource) -> None:
    table, key_col, _ = SECOND[t.source.id]
    before_registration = t.key("-snap")
    t.insert(before_registration)
    t.register(tables=[t.source.table, table])
    try:
        keys = _one_transaction(t)
        tx_topic = transaction_topic(t.name)
        topics = [t.topic, f"{t.name}.{t.source.namespace}.{table}", tx_topic]

        def mine(events: list[Event]) -> list[Change]:
            return [e for e in of_keys(events, keys) if e.op is not Op.READ]

        def done(events: list[Event]) -> bool:
            changes = mine(events)
            if len(changes) < 3 or changes[0].tx is None:
                return False
            ids = {e.id for e in events if isinstance(e, TxMarker)}
            return changes[0].tx.id in ids and any(
                isinstance(e, TxMarker) and e.status == "END" and e.id == changes[0].tx.id
                for e in events
            )

        events = t.consume_until(done, topics=topics)

        (snapshot,) = of_key(events, before_registration)
        assert snapshot.op is Op.READ and snapshot.tx is None

        changes = sorted(mine(events), key=lambda c: c.tx.total_order if c.tx else 0)
        assert [c.key for c in changes] == keys  # statement order
        assert [c.op for c in changes] == [Op.CREATE, Op.CREATE, Op.UPDATE]
        tx_ids = {c.tx.id for c in changes if c.tx is not None}
        assert len(tx_ids) == 1 and all(c.tx is not None for c in changes)
        (tx_id,) = tx_ids
        assert [c.tx.total_order for c in changes if c.tx] == [1, 2, 3]

        markers = [e for e in events if isinstance(e, TxMarker) and e.id == tx_id]
        assert [m.status for m in markers] == ["BEGIN", "END"]
        begin, end = markers
        assert begin.offset < end.offset and begin.source == end.source == t.name
        assert begin.event_count is None and begin.collections == ()
        assert end.event_count == 3
        assert dict(end.collections) == Counter(c.collection for c in changes)
        assert set(dict(end.collections)) == {
            f"{t.source.namespace}.{t.source.table}",
            f"{t.source.namespace}.{table}",
        }

        # the marker's Kafka key is {id}, the id its value carries
        for marker in markers:
            raw_key, raw_value = t.raw_all[(tx_topic, marker.partition, marker.offset)]
            assert raw_key is not None and raw_value is not None
            key, value = _avro(raw_key, schemas), _avro(raw_value, schemas)
            assert key == {"id": value["id"]}
            assert transaction_id(key["id"]) == tx_id

        if t.source is PSA:
            # Debezium's raw ids differ per record; the xid is the source's txId
            assert all(c.position.tx_id == int(tx_id) for c in changes)
            commit = {c.position.commit_lsn for c in changes}
            assert len(commit) == 1 and None not in commit
            orders = [c.position.commit_order() for c in changes]
            assert orders == sorted(orders)  # type: ignore[type-var]  # tuples of ints
        else:
            assert all(c.position.gtid == tx_id for c in changes)
    finally:  # the throwaway deletes its rows of the scenario table; these are ours
        t.execute(f"DELETE FROM {table} WHERE {key_col} LIKE :p", {"p": f"{t.name}-%"})


def test_transaction_metadata(make_throwaway: MakeThrowaway) -> None:
    psa, crm = make_throwaway(PSA), make_throwaway(CRM)
    registry = RegistrySchemaSource(psa.settings.schema_registry_url)
    try:
        _check_source(psa, registry)
        _check_source(crm, registry)
    finally:
        registry.close()
