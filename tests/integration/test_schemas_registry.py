"""The schema registry of the local stack refuses a BACKWARD-breaking change, and so do we.

Each test registers under its own subject (``it-<uuid>-value``) and deletes it afterwards;
``billsync schemas register`` of the real subjects is idempotent, so running it is safe.
"""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from billsync.settings import Settings
from schemas.client import RegistryClient, RegistryError
from schemas.registry import schema_str, subjects

pytestmark = pytest.mark.integration


def billsync(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: exit code and stderr included."""
    return subprocess.run(  # noqa: S603  # fixed interpreter and our own CLI
        [sys.executable, "-c", "from ops.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def client(stack: Settings) -> Iterator[RegistryClient]:
    with RegistryClient(stack.schema_registry_url) as c:
        yield c


@pytest.fixture
def subject(client: RegistryClient) -> Iterator[str]:
    name = f"it-{uuid.uuid4().hex[:12]}-value"
    yield name
    with contextlib.suppress(RegistryError):  # never registered
        client.delete_subject(name)


def _write(tmp_path: Path, name: str, schema: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(schema), encoding="utf-8")
    return str(path)


def test_register_is_idempotent_and_backward(client: RegistryClient) -> None:
    first = billsync("schemas", "register", "--json")
    assert first.returncode == 0, first.stderr
    second = billsync("schemas", "register", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)
    rows = json.loads(second.stdout)
    assert {r["subject"] for r in rows} == {s.name for s in subjects()}
    assert all(r["compatibility"] == "BACKWARD" for r in rows)
    for s in subjects():
        assert client.get_compatibility(s.name) == "BACKWARD"
        assert client.lookup(s.name, s.schema) is not None
    checked = billsync("schemas", "check", "--json")
    assert checked.returncode == 0, checked.stderr
    assert all(r["compatible"] and r["registered"] for r in json.loads(checked.stdout))


def test_breaking_changes_are_refused(client: RegistryClient, subject: str, tmp_path: Path) -> None:
    v1 = json.loads(schema_str("recon.snapshots"))
    ok = billsync(
        "schemas", "register", "--subject", subject, "--file", _write(tmp_path, "v1.avsc", v1)
    )
    assert ok.returncode == 0, ok.stderr
    assert client.get_compatibility(subject) == "BACKWARD"

    required = copy.deepcopy(v1)
    required["fields"].append({"name": "region", "type": "string", "doc": "new, no default"})
    retyped = copy.deepcopy(v1)
    next(f for f in retyped["fields"] if f["name"] == "held_count")["type"] = "string"
    for name, schema, culprit in (
        ("req.avsc", required, "region"),
        ("type.avsc", retyped, "held_count"),
    ):
        path = _write(tmp_path, name, schema)
        checked = billsync("schemas", "check", "--subject", subject, "--file", path)
        assert checked.returncode == 1
        assert subject in checked.stderr and culprit in checked.stderr
        assert "BACKWARD" in checked.stderr and "Traceback" not in checked.stderr
        refused = billsync("schemas", "register", "--subject", subject, "--file", path)
        assert refused.returncode == 1 and subject in refused.stderr
        # the registry itself enforces the subject's BACKWARD level too
        with pytest.raises(RegistryError) as raised:
            client._call(
                "POST", f"/subjects/{subject}/versions", "direct register",
                {"schema": json.dumps(schema), "schemaType": "AVRO"},
            )  # fmt: skip
        assert raised.value.status == 409
    assert client.latest_version(subject) == 1

    optional = copy.deepcopy(v1)
    optional["fields"].append(
        {"name": "region", "type": ["null", "string"], "default": None, "doc": "optional"}
    )
    path = _write(tmp_path, "opt.avsc", optional)
    assert billsync("schemas", "check", "--subject", subject, "--file", path).returncode == 0
    assert billsync("schemas", "register", "--subject", subject, "--file", path).returncode == 0
    assert client.latest_version(subject) == 2


def test_serializer_uses_the_topic_subject_and_no_associations_lookup(
    stack: Settings, client: RegistryClient
) -> None:
    """``schemas.serdes``: subjects are ``<topic>-value`` by contract, and the serializer must
    not ask the associations API first (confluent-kafka 2.16's default strategy does; the
    registry has no such API, and one unanswered request used to hang the caller)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.serialization import MessageField, SerializationContext

    from schemas.serdes import REQUEST_TIMEOUT_S, SERIALIZER_CONF, avro_serializer

    asked: list[str] = []

    class Recording(SchemaRegistryClient):  # type: ignore[misc]  # confluent_kafka is untyped
        def get_associations_by_resource_name(self, *args: Any, **kwargs: Any) -> Any:
            asked.append(str(args))
            return super().get_associations_by_resource_name(*args, **kwargs)

    topic = f"it-serdes-{uuid.uuid4().hex[:12]}"
    registry = Recording({"url": stack.schema_registry_url, "timeout": REQUEST_TIMEOUT_S})
    serialize = avro_serializer(registry, schema_str("billing.dlq"))
    assert SERIALIZER_CONF["subject.name.strategy.type"] == "TOPIC"
    try:
        record = {
            "error": "e", "error_type": "DecodeError", "topic": "t", "partition": 0,
            "offset": 1, "key": None, "value": b"x", "timestamp": None, "received_at": 0,
        }  # fmt: skip
        framed = serialize(record, SerializationContext(topic, MessageField.VALUE))
        assert framed[:1] == b"\x00"  # Confluent framing
        assert asked == []
        assert json.loads(client.latest_schema(f"{topic}-value"))["name"] == "DeadLetter"
    finally:
        with contextlib.suppress(RegistryError):
            client.delete_subject(f"{topic}-value")
