"""connectors/erp.json: the third connector, capturing the ERP's period calendar (SPEC 2b)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from billsync.model import ERP_TABLES
from billsync.settings import Settings
from connectors.registration import validate
from connectors.rules import check
from connectors.sources import ERP_CAPTURED, HEARTBEAT_TABLE, SIGNAL_TABLE
from connectors.templates import render_named
from ops.stack import topology as t
from ops.stack.topology import avro_converter_config


def _settings(**extra: object) -> Settings:
    return Settings(
        psa_db_url=SecretStr("postgresql+psycopg://billsync:pw@10.0.0.5:5433/psa"),
        crm_db_url=SecretStr("mysql+pymysql://billsync:pw@10.0.0.6:3307/crm"),
        erp_db_url=SecretStr("postgresql+psycopg://erp_app:pw@10.0.0.9:5433/erp"),
        kafka_bootstrap="10.0.0.7:9092",
        schema_registry_url="http://10.0.0.8:8081/apis/ccompat/v7",
        **extra,  # type: ignore[arg-type]  # test-only passthrough of optional fields
    )


def test_erp_renders_from_erp_db_url_with_its_own_user_slot_and_publication() -> None:
    config = render_named("erp", _settings())
    assert (config["database.hostname"], config["database.port"]) == ("10.0.0.9", "5433")
    assert config["database.dbname"] == t.ERP_DB
    assert config["topic.prefix"] == config["name"] == "erp"
    assert config["database.user"] == t.ERP_DEBEZIUM
    assert config["database.password"] == "${env:" + t.DEBEZIUM_ERP_PASSWORD_ENV + "}"
    assert config["slot.name"] == "billsync_erp"
    assert config["publication.name"] == t.ERP_PUBLICATION
    assert config["publication.autocreate.mode"] == "disabled"  # db init creates it
    assert "pw" not in config.values()


def test_erp_captures_the_period_calendar_and_its_signal_table_only() -> None:
    config = render_named("erp", _settings())
    captured = config["table.include.list"].split(",")
    # accounting_periods of every schema (each ERP schema's own topic), the signal table
    assert captured == [r"[^.]+\.accounting_periods", f"public.{SIGNAL_TABLE}"]
    assert ERP_TABLES == ("accounting_periods",)
    assert "schema.include.list" not in config
    # the publication `db init` creates holds them, and the heartbeat table too
    assert {"accounting_periods", SIGNAL_TABLE, HEARTBEAT_TABLE} == set(ERP_CAPTURED)
    assert f"public.{HEARTBEAT_TABLE}" in config["heartbeat.action.query"]


def test_erp_passes_the_rules_and_shares_no_slot_with_psa() -> None:
    result = validate("erp", _settings(), None)
    assert result.violations == []
    psa = render_named("psa", _settings())
    erp = render_named("erp", _settings())
    assert check("erp", erp, {"psa": psa}) == []
    assert {erp[k] for k in ("slot.name", "publication.name", "database.user")}.isdisjoint(
        {psa[k] for k in ("slot.name", "publication.name", "database.user")}
    )


@pytest.mark.parametrize("side", ["key.converter", "value.converter"])
def test_erp_converter_block_is_the_stacks_confluent_wire_format(side: str) -> None:
    config = render_named("erp", _settings())
    expected = avro_converter_config("http://10.0.0.8:8081", side)
    assert {k: v for k, v in config.items() if k.startswith(side)} == expected


def test_connectors_validate_erp_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from billsync.settings import get_settings
    from ops.commands.connectors import app

    monkeypatch.setenv("PSA_DB_URL", "postgresql://u:secret-pw@db.example:5433/psa")
    monkeypatch.setenv("CRM_DB_URL", "mysql://u:secret-pw@crm.example:3307/crm")
    monkeypatch.setenv("ERP_DB_URL", "postgresql://u:secret-pw@db.example:5433/erp")
    monkeypatch.setenv("BILLSYNC_STACK_DIR", "/nonexistent-billsync-stack")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["validate", "erp", "--offline", "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert '"valid": true' in result.output and "secret-pw" not in result.output
