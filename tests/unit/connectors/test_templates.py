"""Connector templates render from settings; every shipped template passes billsync's rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from billsync.errors import ConfigError
from billsync.settings import Settings
from connectors.registration import validate
from connectors.templates import (
    apicurio_registry_url,
    load_template,
    render,
    render_named,
    template_names,
)
from ops.stack.topology import avro_converter_config


def _settings(**extra: object) -> Settings:
    return Settings(
        psa_db_url=SecretStr("postgresql+psycopg://billsync:pw@10.0.0.5:5433/psa"),
        crm_db_url=SecretStr("mysql+pymysql://billsync:pw@10.0.0.6:3307/crm"),
        kafka_bootstrap="10.0.0.7:9092",
        schema_registry_url="http://10.0.0.8:8081/apis/ccompat/v7",
        **extra,  # type: ignore[arg-type]  # test-only passthrough of optional fields
    )


def test_the_shipped_templates_are_psa_and_crm() -> None:
    assert {"psa", "crm"} <= set(template_names())


def test_psa_renders_hosts_ports_and_database_from_settings() -> None:
    config = render_named("psa", _settings())
    assert config["database.hostname"] == "10.0.0.5"
    assert config["database.port"] == "5433"
    assert config["database.dbname"] == "psa"
    assert config["key.converter.apicurio.registry.url"] == "http://10.0.0.8:8081/apis/registry/v2"
    assert config["name"] == "psa"
    # the secret stays a reference for Connect's config provider
    assert config["database.password"] == "${env:BILLSYNC_DEBEZIUM_PSA_PASSWORD}"
    assert "pw" not in json.dumps(config)


def test_crm_renders_database_into_include_lists_and_history_bootstrap() -> None:
    config = render_named("crm", _settings())
    assert config["database.include.list"] == "crm"
    assert config["table.include.list"].split(",") == [
        "crm.accounts",
        "crm.contracts",
        "crm.contract_rates",
        "crm.contract_amendments",
        "crm.debezium_signal",
    ]
    assert config["schema.history.internal.kafka.bootstrap.servers"] == "10.0.0.7:9092"


@pytest.mark.parametrize("name", ["psa", "crm"])
def test_shipped_templates_pass_the_rules(name: str) -> None:
    result = validate(name, _settings(), None)
    assert result.violations == []
    assert result.ok and not result.connect_checked


def test_a_third_source_is_one_file(tmp_path: Path) -> None:
    """A second PSA region: copy psa.json, change prefix, slot and placeholders."""
    text = (Path(load_template("psa").path)).read_text()
    text = (
        text.replace('"topic.prefix": "psa"', '"topic.prefix": "psa_eu"')
        .replace("{{psa.", "{{psa_eu.")
        .replace('"slot.name": "billsync_psa"', '"slot.name": "billsync_psa_eu"')
        .replace("BILLSYNC_DEBEZIUM_PSA_PASSWORD", "BILLSYNC_DEBEZIUM_PSA_EU_PASSWORD")
    )
    for name in ("psa", "crm"):
        (tmp_path / f"{name}.json").write_text(load_template(name).path.read_text())
    (tmp_path / "psa_eu.json").write_text(text)
    settings = _settings(
        source_db_urls={"psa_eu": SecretStr("postgresql://u:p@eu-db.internal:5432/psa_eu")}
    )
    result = validate("psa_eu", settings, None, directory=tmp_path)
    assert result.violations == []
    assert result.config["database.hostname"] == "eu-db.internal"
    assert result.config["database.dbname"] == "psa_eu"


def test_unknown_placeholder_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"database.hostname": "{{nowhere.host}}"}')
    with pytest.raises(ConfigError, match=r"nowhere\.host.*field: database\.hostname"):
        render(load_template("x", tmp_path), _settings())


def test_missing_source_url_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PSA_DB_URL", raising=False)
    monkeypatch.delenv("BILLSYNC_PSA_DB_URL", raising=False)
    with pytest.raises(ConfigError, match="PSA_DB_URL"):
        render_named("psa", Settings(psa_db_url=None))


def test_unknown_template_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"known: .*crm.*psa"):
        load_template("nope")


def test_non_string_value_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"tasks.max": 1}')
    with pytest.raises(ConfigError, match=r"field: tasks\.max.*quote the value"):
        load_template("x", tmp_path)


def test_malformed_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{nope")
    with pytest.raises(ConfigError, match=r"x\.json is not valid JSON"):
        load_template("x", tmp_path)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://r:8081/apis/ccompat/v7", "http://r:8081/apis/registry/v2"),
        ("http://r:8081/apis/ccompat/v7/", "http://r:8081/apis/registry/v2"),
        ("http://r:8081/apis/registry/v3", "http://r:8081/apis/registry/v3"),
        ("http://r:8081", "http://r:8081/apis/registry/v2"),
    ],
)
def test_apicurio_url_from_the_confluent_compatible_url(given: str, expected: str) -> None:
    assert apicurio_registry_url(given) == expected


@pytest.mark.parametrize("name", ["psa", "crm"])
@pytest.mark.parametrize("side", ["key.converter", "value.converter"])
def test_converter_block_is_the_stacks_confluent_wire_format(name: str, side: str) -> None:
    """Kept in step with ops/stack/topology.py: Apicurio Avro, magic byte + 4-byte contentId."""
    config = render_named(name, _settings())
    expected = avro_converter_config("http://10.0.0.8:8081", side)
    assert {k: v for k, v in config.items() if k.startswith(side)} == expected
