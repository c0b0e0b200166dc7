"""Run the story flow as one Bytewax process of a two-process cluster (spawned by the test)."""

from __future__ import annotations

import sys

from bytewax.testing import TestingSource, cluster_main
from sqlalchemy import create_engine

from dataflows.billing.mappings import load_mappings
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.flow import build_flow
from sinks.erp.sink import ErpSink
from tests.unit.flow.test_flow import story


def main(url: str, addresses: str, proc_id: int) -> None:
    rec, _ = story()
    flow = build_flow(
        TestingSource(rec.messages, batch_size=3),
        decoder=lambda: ChangeDecoder(rec.schemas),
        mappings=load_mappings(),
        erp_sink=ErpSink(lambda: create_engine(url)),
    )
    cluster_main(flow, addresses.split(","), proc_id, worker_count_per_proc=2)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
