"""The ports of a process cluster stay out of the kernel's ephemeral range (ops/run/ports.py).

Why: a two-process Bytewax cluster restarted on the test harness's ports (41137-41138, from
the ephemeral range) could not listen on its port: an outgoing connection
(``127.0.0.1:41138 -> 127.0.0.1:9092``) had been given it as its local port (2026-12-01,
while chasing a failure of chaos 02 on ``--processes 2``). The first test shows that
mechanism on loopback; the others the refusal and the test harness's choice of ports.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.run.ports import (
    check_cluster_ports,
    clash,
    ephemeral_range,
    free_cluster_ports,
)

LINUX = range(32768, 61000)


def test_a_port_held_by_an_outgoing_connection_cannot_be_listened_on() -> None:
    """What a cluster port in the ephemeral range risks: the kernel gave it to an outgoing
    connection, and a listener on it fails even with SO_REUSEADDR (which Rust's and Python's
    listeners set)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        try:
            taken = client.getsockname()[1]  # the local port the kernel handed out
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with listener, pytest.raises(OSError, match="in use"):
                listener.bind(("127.0.0.1", taken))
        finally:
            client.close()


def test_ephemeral_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    f = tmp_path / "ip_local_port_range"
    f.write_text("32768\t60999\n")
    assert ephemeral_range(f) == LINUX
    assert ephemeral_range(tmp_path / "missing") is None  # not Linux: nothing to avoid
    f.write_text("garbage")
    assert ephemeral_range(f) is None


@pytest.mark.parametrize(
    ("base", "n", "inside"),
    [
        (2101, 2, None),  # the default
        (32767, 1, None),
        (32767, 2, range(32768, 32769)),
        (41137, 2, range(41137, 41139)),
        (60999, 2, range(60999, 61000)),
        (61000, 4, None),
    ],
)
def test_clash_names_the_ports_in_the_range(base: int, n: int, inside: range | None) -> None:
    assert clash(base, n, LINUX) == inside
    refused = check_cluster_ports(base, n, LINUX)
    assert (refused is None) == (inside is None)
    if refused is not None:
        assert "32768..60999" in refused and "net.ipv4.ip_local_port_range" in refused


def test_ports_outside_1024_to_65535_are_refused() -> None:
    assert check_cluster_ports(80, 2, LINUX) is not None
    assert check_cluster_ports(65535, 2, LINUX) is not None
    assert check_cluster_ports(65534, 2, LINUX) is None


def test_run_refuses_a_cluster_in_the_ephemeral_range_before_starting_anything() -> None:
    ephemeral = ephemeral_range()
    if ephemeral is None:
        pytest.skip("no ephemeral range to clash with on this platform")
    base = ephemeral.start + 10
    res = CliRunner().invoke(app, ["run", "--processes", "2", "--base-port", str(base)])
    assert res.exit_code == 2, res.output
    assert "ephemeral" in res.output


def test_test_clusters_get_free_ports_below_the_range() -> None:
    for _ in range(20):
        base = free_cluster_ports(2, LINUX)
        assert 20000 <= base < LINUX.start - 1
    # a range that starts low leaves room above it only
    base = free_cluster_ports(2, range(1024, 50000))
    assert base >= 50000
    with pytest.raises(OSError, match="no 2 consecutive free"):
        free_cluster_ports(2, range(1024, 65536))


def test_a_process_never_gets_the_same_port_twice() -> None:
    """A port is free when picked but unbound until its user starts: the e2e harness picks a
    flow's cluster ports and its metrics port apart, so a second pick must not return a port
    of the first (seen in review, 2026-12-01: about 4 in 12,700 per test)."""
    handed: list[int] = []
    for n in (2, 1, 2, 1, 4) * 40:
        base = free_cluster_ports(n, LINUX)
        handed.extend(range(base, base + n))
    assert len(handed) == len(set(handed))
