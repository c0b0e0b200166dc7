"""The partitioned billing step's pieces (``dataflows/sharding.py``): the sequencer's barrier
after a close, the shard count a recovery store was written with, and the merge's order.

The whole step is checked on the property worlds (``test_worlds_workers.py``,
``test_worlds_closes.py``) and its billing semantics on the pure engines
(``tests/unit/billing/test_shards_properties.py``).
"""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import ClassVar

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulLogic
from bytewax.testing import TestingSource, cluster_main

from billsync.change import Change, Op, SourcePosition
from billsync.errors import ConfigError
from billsync.model import AccountingPeriod, Row
from dataflows.billing.target import Delta
from dataflows.emissions import Progress
from dataflows.ordering import Unit
from dataflows.placement import worker_of
from dataflows.sharding import (
    MERGE_KEY,
    Bundle,
    MergeLogic,
    Numbered,
    SequencerLogic,
    UnitMarks,
    check_layout,
    exchange_name,
    shard_key,
)
from tests.unit.billing.worlds import base_rows

_offset = [0]


def _change(row: Row, topic: str) -> Change:
    _offset[0] += 1
    source = topic.split(".", 1)[0]
    pos = SourcePosition(source, lsn=_offset[0], tx_id=_offset[0])
    return Change(row.TABLE, Op.UPDATE, row.key, None, row, pos, topic=topic, partition=0,
                  offset=_offset[0])  # fmt: skip


def _sent(out: object) -> list[tuple[str, Numbered]]:
    return list(out)  # type: ignore[call-overload]  # an iterable of the logic's outputs


def test_the_sequencer_holds_every_unit_after_a_close_until_every_shard_exchanged(
    tmp_path: Path,
) -> None:
    seq = SequencerLogic(None, 2, tmp_path)
    start = _sent(seq.on_notify()[0])
    assert [k for k, _ in start] == [shard_key(0), shard_key(1)]  # the start token to each
    assert all(n.unit is None and n.covers is None for _, n in start)  # a fresh run

    close = _change(AccountingPeriod("2024-03", "closed"), "erp.public.accounting_periods")
    sent = _sent(seq.on_item(close)[0])
    assert [n.barrier for _, n in sent] == [True, True]
    barrier = sent[0][1]

    later = _change(base_rows()["T1"], "psa.public.timesheets")
    assert _sent(seq.on_item(later)[0]) == []  # held: the shards have not exchanged yet
    assert seq.notify_at() is not None  # it polls for the files
    (tmp_path / exchange_name(barrier.execution, barrier.seq, 0)).write_bytes(b"")
    assert _sent(seq.on_notify()[0]) == []  # one shard's file is not enough
    (tmp_path / exchange_name(barrier.execution, barrier.seq, 1)).write_bytes(b"")
    released = _sent(seq.on_notify()[0])
    assert [n.seq for _, n in released] == [barrier.seq + 1] * 2
    assert released[0][1].unit is not None and released[0][1].unit.changes == (later,)
    assert seq.notify_at() is None


def test_a_resumed_sequencer_runs_a_new_execution_and_sends_what_was_applied(
    tmp_path: Path,
) -> None:
    seq = SequencerLogic(None, 2, tmp_path)
    seq.on_notify()
    seq.on_item(_change(base_rows()["T1"], "psa.public.timesheets"))
    resumed = SequencerLogic(seq.snapshot(), 2, tmp_path)
    start = _sent(resumed.on_notify()[0])
    token = start[0][1]
    assert token.execution == 2 and token.unit is None
    assert token.covers == (("psa.public.timesheets:0", _offset[0]),)
    with pytest.raises(ConfigError, match="BILLSYNC_SHARDS"):
        SequencerLogic(seq.snapshot(), 3, tmp_path)


def test_a_recovery_store_keeps_its_shard_count(tmp_path: Path) -> None:
    check_layout(tmp_path / "new", 2)  # a new store: its count is written down
    check_layout(tmp_path / "new", 2)
    with pytest.raises(ConfigError, match="written with 2 shard"):
        check_layout(tmp_path / "new", 1)
    old = tmp_path / "old"  # a store of one engine, written before shards existed
    old.mkdir()
    (old / "base-0000000001-abc.seg").write_bytes(b"")
    check_layout(old, 1)
    with pytest.raises(ConfigError, match="written with 1 shard"):
        check_layout(old, 4)


def test_the_merge_releases_units_in_order_once_every_shard_answered() -> None:
    merge = MergeLogic.build(2, None)
    unit = Unit("psa", (_change(base_rows()["T1"], "psa.public.timesheets"),), None,
                (("psa.public.timesheets:0", 7),))  # fmt: skip

    def bundle(seq: int, shard: int) -> Bundle:
        marks = UnitMarks.of(unit) if shard == 0 else None
        return Bundle(seq, shard, (Delta(),), None, unit=marks)

    assert list(merge.on_item(bundle(2, 1))[0]) == []
    assert list(merge.on_item(bundle(3, 1))[0]) == []
    assert list(merge.on_item(bundle(3, 0))[0]) == []  # 2 is still incomplete: 3 waits
    out = list(merge.on_item(bundle(2, 0))[0])
    assert out == [Progress(unit.covers), Progress(unit.covers)]  # 2, then 3
    resumed = MergeLogic.build(2, pickle.dumps({4: {0: bundle(4, 0)}}))
    assert list(resumed.on_item(bundle(4, 1))[0]) == [Progress(unit.covers)]


class _Where(StatefulLogic[tuple[str, str], None, None]):
    """Notes the thread (the Bytewax worker) each key's state runs on."""

    seen: ClassVar[dict[str, str]] = {}

    def on_item(self, value: tuple[str, str]) -> tuple[list[None], bool]:
        self.seen[value[0]] = threading.current_thread().name
        return [], StatefulLogic.RETAIN

    def snapshot(self) -> None:
        return None


def test_bytewax_runs_each_shard_on_the_worker_placement_computes() -> None:
    """The shards of 4 shards on 4 workers each on its own worker, as ``placement.worker_of``
    says; and a key's worker is what it computes (an upgrade of Bytewax that routes keys
    otherwise fails here, instead of putting every shard on one worker)."""
    keys = [shard_key(i) for i in range(4)] + ["billing", MERGE_KEY, "shard-0", "shard-1"]
    flow = Dataflow("placement")
    items = op.input("in", flow, TestingSource([(k, k) for k in keys]))
    keyed = op.key_on("key", items, lambda kv: kv[0])
    op.inspect("seen", op.stateful("where", keyed, lambda _r: _Where()))
    _Where.seen.clear()
    cluster_main(flow, [], 0, worker_count_per_proc=4)  # type: ignore[no-untyped-call]  # bytewax leaves it unannotated
    threads = _Where.seen
    assert len({threads[shard_key(i)] for i in range(4)}) == 4
    for a in keys:
        for b in keys:
            same = worker_of(a, 4) == worker_of(b, 4)
            assert (threads[a] == threads[b]) == same, (a, b)


def test_a_unit_of_no_change_passes_shards_and_merge(tmp_path: Path) -> None:
    """A dead letter's unit (no change): its letter and Progress, once, as one engine's."""
    from dataflows.sharding import ShardLogic
    from tests.unit.billing.worlds import MAPPINGS

    letter = {"error": "bad record", "topic": "psa.public.timesheets", "offset": 3}
    unit = Unit("psa", (), None, (("psa.public.timesheets:0", 3),), (letter,))
    merge = MergeLogic.build(2, None)
    out = []
    for i in range(2):
        shard = ShardLogic(MAPPINGS, None, 2, tmp_path / "finals", tmp_path / "exchange")
        (bundle,) = shard.on_item(Numbered(1, 1, i, unit))[0]
        out += list(merge.on_item(bundle)[0])
    assert out == [letter, Progress(unit.covers)]
