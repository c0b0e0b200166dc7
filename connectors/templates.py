"""Connector templates: one JSON file per Debezium source in this folder, rendered with settings.

A template is the flat Kafka Connect configuration of one connector; its file name (without
``.json``) is the connector's name and must equal its ``topic.prefix``. String values may hold
placeholders ``{{NAME}}`` that are filled from the settings at render time:

- ``{{kafka_bootstrap}}`` — the broker, as Connect reaches it;
- ``{{registry_url}}`` — the Apicurio registry's native API that the stack's Apicurio converter
  speaks (``/apis/registry/v2``, see ``ops/stack/topology.py``), derived from
  ``SCHEMA_REGISTRY_URL`` (the Confluent-compatible path ``/apis/ccompat/v7``);
- ``{{SOURCE.host}}``, ``{{SOURCE.port}}``, ``{{SOURCE.database}}`` — parts of the source
  database URL: ``psa`` from ``PSA_DB_URL``, ``crm`` from ``CRM_DB_URL``, ``erp`` from
  ``ERP_DB_URL`` (the ERP's period calendar, SPEC 2b), any other name from
  ``BILLSYNC_SOURCE_DB_URLS``.

Connect's own ``${provider:...}`` references (secrets) are left for Connect to resolve.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from billsync.errors import ConfigError
from billsync.settings import Settings
from schemas.client import REGISTRY_V2_PATH

TEMPLATE_DIR = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
_SOURCE_SETTINGS = {"psa": "psa_db_url", "crm": "crm_db_url", "erp": "erp_db_url"}
_CCOMPAT_PATH = re.compile(r"/apis/ccompat/v\d+/?$")


@dataclass(frozen=True)
class Template:
    """One connector template file, not yet rendered."""

    name: str
    path: Path
    config: dict[str, str]

    @property
    def connector_class(self) -> str:
        return self.config.get("connector.class", "")


def template_names(directory: Path = TEMPLATE_DIR) -> list[str]:
    """Names of every connector template in ``directory`` (sorted)."""
    return sorted(p.stem for p in directory.glob("*.json"))


def load_template(name: str, directory: Path = TEMPLATE_DIR) -> Template:
    """Read ``<directory>/<name>.json``; a missing or malformed file names the fix."""
    path = directory / f"{name}.json"
    if not path.is_file():
        known = ", ".join(template_names(directory)) or "none"
        raise ConfigError(
            f"no connector template named {name!r} (known: {known})",
            field="NAME",
            fix=f"use one of the known names or add {path.name} to {directory}",
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}",
            field=path.name,
            fix="fix the JSON syntax of the template",
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path.name} must hold one JSON object (the flat Connect configuration)",
            field=path.name,
            fix='write the template as {"key": "value", ...}',
        )
    config: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ConfigError(
                f"{path.name}: value of {key!r} is {type(value).__name__}, Connect wants strings",
                field=key,
                fix=f'quote the value: "{key}": "{value}"',
            )
        config[key] = value
    return Template(name=name, path=path, config=config)


def registry_base_url(ccompat_url: str) -> str:
    """The registry root of a Confluent-compatible registry URL (``…/apis/ccompat/v7``)."""
    return _CCOMPAT_PATH.sub("", ccompat_url.rstrip("/"))


def apicurio_registry_url(ccompat_url: str) -> str:
    """The native API URL the Connect converter uses, for a Confluent-compatible URL."""
    base = registry_base_url(ccompat_url)
    if "/apis/" in base:
        return base  # already a native API URL
    return base + REGISTRY_V2_PATH


def _source_parts(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "",
        "port": str(parts.port) if parts.port else "",
        "database": parts.path.lstrip("/").split("?", 1)[0],
    }


def placeholder_resolver(settings: Settings) -> Callable[[str], str | None]:
    """A function from placeholder name to its value (None when the name is unknown)."""

    def resolve(name: str) -> str | None:
        if name == "kafka_bootstrap":
            return settings.kafka_bootstrap
        if name == "registry_url":
            return apicurio_registry_url(settings.schema_registry_url)
        source, _, part = name.partition(".")
        if part not in ("host", "port", "database"):
            return None
        if source in _SOURCE_SETTINGS:
            url = settings.require(_SOURCE_SETTINGS[source])
        elif source in settings.source_db_urls:
            url = settings.source_db_urls[source].get_secret_value()
        else:
            return None
        return _source_parts(url)[part] or None

    return resolve


def render(template: Template, settings: Settings) -> dict[str, str]:
    """The template with every ``{{placeholder}}`` filled; ``name`` set to the template name."""
    resolve = placeholder_resolver(settings)
    rendered: dict[str, str] = {}
    for key, value in template.config.items():

        def fill(match: re.Match[str], key: str = key) -> str:
            name = match.group(1)
            filled = resolve(name)
            if filled is None:
                raise ConfigError(
                    f"{template.path.name}: placeholder {{{{{name}}}}} has no value",
                    field=key,
                    fix="use {{kafka_bootstrap}}, {{registry_url}} or {{SOURCE.host|port|"
                    "database}} with SOURCE psa, crm, erp or a name in BILLSYNC_SOURCE_DB_URLS",
                )
            return filled

        rendered[key] = PLACEHOLDER.sub(fill, value)
    rendered["name"] = template.name
    return rendered


def render_named(name: str, settings: Settings, directory: Path = TEMPLATE_DIR) -> dict[str, str]:
    """Load and render the template ``name``."""
    return render(load_template(name, directory), settings)
