"""`bench core --workers/--processes`: the flow on several workers and processes reads a
partition per source, ends in the same line states, and the closes are not read ahead."""

from __future__ import annotations

from pathlib import Path

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage

from ops.bench import cluster
from ops.bench.cluster import GATED, Clock, SourceSource, by_source
from ops.bench.core import Options, run_core
from ops.bench.debezium import Framed


def test_every_worker_and_process_count_ends_in_the_same_line_states() -> None:
    # without closes the targets are a function of the rows, whatever the interleaving of
    # the sources: every pass must end in the line states of the in-process pass
    # (issue 13.2 asks this of 1, 2 and 4 workers and of 2 processes of 2 workers)
    one = run_core(3000, Options(closes=False, workers=(1, 2, 4)))
    two = run_core(3000, Options(closes=False, flow=False, workers=(1, 2), processes=2))
    digests = {p["pass"]: p["lines_digest"] for p in one["passes"] + two["passes"]}
    assert set(digests) == {
        "decode (ceiling)",
        "decode+billing+memory sink",
        "bytewax flow, 1 worker",
        "flow 1x1, partition per source",
        "flow 1x2, partition per source",
        "flow 1x4, partition per source",
        "flow 2x1, partition per source",
        "flow 2x2, partition per source",
    }
    billed = {d for name, d in digests.items() if name != "decode (ceiling)"}
    assert len(billed) == 1 and None not in billed
    assert all(p["outputs"] > 0 for p in one["passes"] + two["passes"])


def _records() -> list[Framed]:
    # stream order: psa, erp (a close at position 1), psa, crm, erp (position 4)
    return [
        Framed("psa.public.timesheets", b"k", b"v0"),
        Framed("erp.public.accounting_periods", b"k", b"v1"),
        Framed("psa.public.timesheets", b"k", b"v2"),
        Framed("crm.crm.contracts", b"k", b"v3"),
        Framed("erp.public.accounting_periods", b"k", b"v4"),
    ]


def _values(batch: list[KafkaSourceMessage[bytes | None, bytes | None]]) -> list[bytes | None]:
    return [m.value for m in batch]


def test_the_erp_partition_waits_until_the_others_read_past_each_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "BATCH", 1)
    parts = by_source(_records())
    assert [g for g, _m in parts["psa"]] == [0, 2]  # places in the stream
    assert [m.offset for _g, m in parts["psa"]] == [0, 1]  # offsets per topic
    source = SourceSource(parts, Clock.create(tmp_path / "clock", len(parts)))
    erp = source.build_part("in", GATED, None)
    psa = source.build_part("in", "psa", None)
    crm = source.build_part("in", "crm", None)
    assert erp.next_batch() == []  # nobody has read anything yet
    assert erp.next_awake() is not None  # polled again soon, not in a spin
    assert _values(psa.next_batch()) == [b"v0"]  # psa now stands at place 2
    assert erp.next_batch() == []  # crm still stands at 0
    assert _values(crm.next_batch()) == [b"v3"]  # crm has read everything
    assert _values(erp.next_batch()) == [b"v1"]  # place 1 < 2; place 4 is not
    assert erp.next_batch() == []
    assert _values(psa.next_batch()) == [b"v2"]
    assert _values(erp.next_batch()) == [b"v4"]
    assert erp.next_awake() is None
    for part in (erp, psa, crm):
        with pytest.raises(StopIteration):
            part.next_batch()
