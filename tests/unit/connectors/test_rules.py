"""billsync's own connector rules: each bad configuration names its field and its fix."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from billsync.settings import Settings
from connectors import rules
from connectors.registration import ConnectorConfigInvalid, validate_config
from connectors.templates import render_named

SETTINGS = Settings(
    psa_db_url=SecretStr("postgresql://u:p@127.0.0.1:5433/psa"),
    crm_db_url=SecretStr("mysql://u:p@127.0.0.1:3307/crm"),
    erp_db_url=SecretStr("postgresql://u:p@127.0.0.1:5433/erp"),
)


def _good(name: str) -> dict[str, str]:
    return render_named(name, SETTINGS)


def _fields(violations: list[rules.Violation]) -> set[str]:
    return {v.field for v in violations}


@pytest.mark.parametrize("name", ["psa", "crm"])
def test_good_configs_have_no_violations(name: str) -> None:
    assert rules.check(name, _good(name)) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("database.password", "hunter2"),
        ("database.password", "${env:}"),
        ("database.password", "prefix ${env:X}"),
        ("ssl.keystore.password", "changeit"),
        ("some.client.secret", "s3cr3t"),
        ("Database.PASSWORD", "x"),
    ],
)
def test_literal_secrets_are_refused(key: str, value: str) -> None:
    config = _good("psa") | {key: value}
    found = [v for v in rules.check("psa", config) if v.field == key]
    assert found and "literal secret" in found[0].problem
    assert "${env:" in found[0].fix


@pytest.mark.parametrize(
    "value", ["${env:BILLSYNC_DEBEZIUM_PSA_PASSWORD}", "${file:/etc/secrets.properties:pw}"]
)
def test_provider_references_are_accepted(value: str) -> None:
    assert rules.check("psa", _good("psa") | {"database.password": value}) == []


def test_prefix_must_match_the_file_name() -> None:
    (v,) = rules.check("psa", _good("psa") | {"topic.prefix": "pg"})
    assert v.field == "topic.prefix" and '"topic.prefix": "psa"' in v.fix


@pytest.mark.parametrize("side", ["key", "value"])
def test_converters_must_be_apicurio_avro(side: str) -> None:
    config = _good("crm") | {f"{side}.converter": "org.apache.kafka.connect.json.JsonConverter"}
    (v,) = rules.check("crm", config)
    assert v.field == f"{side}.converter" and rules.AVRO_CONVERTER in v.fix


@pytest.mark.parametrize("side", ["key", "value"])
def test_missing_converter_and_registry_url(side: str) -> None:
    config = _good("psa")
    del config[f"{side}.converter"]
    del config[f"{side}.converter.apicurio.registry.url"]
    assert _fields(rules.check("psa", config)) == {
        f"{side}.converter",
        f"{side}.converter.apicurio.registry.url",
    }


@pytest.mark.parametrize("mode", ["double", "string"])
def test_decimals_must_be_precise(mode: str) -> None:
    (v,) = rules.check("psa", _good("psa") | {"decimal.handling.mode": mode})
    assert v.field == "decimal.handling.mode" and "precise" in v.fix


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_heartbeat_must_be_positive(value: str) -> None:
    (v,) = rules.check("crm", _good("crm") | {"heartbeat.interval.ms": value})
    assert v.field == "heartbeat.interval.ms"


@pytest.mark.parametrize(
    "field",
    [
        "heartbeat.interval.ms",
        "decimal.handling.mode",
        "table.include.list",
        "slot.name",
        "heartbeat.action.query",
        "database.password",
    ],
)
def test_required_fields_of_postgres(field: str) -> None:
    config = _good("psa")
    del config[field]
    assert field in _fields(rules.check("psa", config))


@pytest.mark.parametrize(
    "field",
    ["database.server.id", "schema.history.internal.kafka.topic", "database.include.list"],
)
def test_required_fields_of_mariadb(field: str) -> None:
    config = _good("crm")
    del config[field]
    (v,) = rules.check("crm", config)
    assert v.field == field and v.fix.startswith(f"set {field}")


def test_unknown_table_is_refused() -> None:
    config = _good("psa")
    config["table.include.list"] += ",public.no_such_table"
    (v,) = rules.check("psa", config)
    assert v.field == "table.include.list" and "no_such_table" in v.problem


def test_signal_table_must_be_captured() -> None:
    config = _good("crm")
    config["table.include.list"] = "crm.accounts"
    (v,) = rules.check("crm", config)
    assert "signal" in v.problem


def test_unsupported_class_and_plugin() -> None:
    config = _good("psa") | {"plugin.name": "decoderbufs"}
    assert _fields(rules.check("psa", config)) == {"plugin.name"}
    config = _good("psa") | {"connector.class": "com.example.Other"}
    assert "connector.class" in _fields(rules.check("psa", config))


def test_tombstones_must_stay_on() -> None:
    (v,) = rules.check("psa", _good("psa") | {"tombstones.on.delete": "false"})
    assert v.field == "tombstones.on.delete"


@pytest.mark.parametrize("name", ["psa", "crm", "erp"])
def test_shipped_templates_provide_transaction_metadata(name: str) -> None:
    assert _good(name)["provide.transaction.metadata"] == "true"


@pytest.mark.parametrize(
    ("name", "change", "field"),
    [
        ("psa", {"provide.transaction.metadata": "false"}, "provide.transaction.metadata"),
        ("crm", {"provide.transaction.metadata": ""}, "provide.transaction.metadata"),
        ("psa", {"topic.transaction": "tx"}, "topic.transaction"),
    ],
)
def test_transaction_metadata_is_required_on_its_default_topic(
    name: str, change: dict[str, str], field: str
) -> None:
    (v,) = rules.check(name, _good(name) | change)
    assert v.field == field and v.fix


def test_transaction_metadata_missing_is_refused() -> None:
    config = _good("crm")
    del config["provide.transaction.metadata"]
    (v,) = rules.check("crm", config)
    assert v.field == "provide.transaction.metadata"
    assert "half of one" in v.problem and '"true"' in v.fix


def test_slot_and_server_id_must_be_unique_across_templates() -> None:
    others = {"psa": _good("psa"), "crm": _good("crm")}
    twin = _good("psa") | {"topic.prefix": "psa2", "name": "psa2"}
    assert _fields(rules.check("psa2", twin, others)) == {"slot.name"}
    crm2 = _good("crm") | {"topic.prefix": "crm2"}
    assert _fields(rules.check("crm2", crm2, others)) == {"database.server.id"}


def test_leftover_placeholder_is_refused() -> None:
    v = rules.check("psa", _good("psa") | {"database.hostname": "{{psa.host}}"})
    assert "database.hostname" in _fields(v)


def test_refusal_lists_every_problem_and_names_the_first_fix() -> None:
    config = _good("psa") | {"decimal.handling.mode": "double", "database.password": "x"}
    result = validate_config("psa", config, None)
    assert not result.ok
    err = ConnectorConfigInvalid("psa", result.violations)
    text = str(err)
    assert "nothing registered" in text
    assert "decimal.handling.mode" in text and "database.password" in text
    assert err.field == "decimal.handling.mode"
