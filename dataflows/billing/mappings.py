"""The reference mappings finance edits: labor category -> ERP item, jurisdiction -> tax rate.

Loaded once at start from two versioned CSV files with a header row (SPEC 1). A bad file is
refused with a :class:`~billsync.errors.ConfigError` naming the file, the line and the
column. :attr:`Mappings.fingerprint` (sha256 over both files' bytes) lets the dataflow see at
start that finance changed a file, and re-evaluate the lines it affects.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from billsync.errors import ConfigError

LABOR_FILE = "labor_categories.csv"
TAX_FILE = "tax_rates.csv"
LABOR_COLUMNS = ("labor_category", "erp_item_code", "revenue_account")
TAX_COLUMNS = ("tax_jurisdiction", "tax_rate")
MILESTONE_CATEGORY = "MILESTONE"  # the labor mapping row that milestones use (SPEC 2)
DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "reference"


@dataclass(frozen=True, slots=True)
class LaborMapping:
    erp_item_code: str
    revenue_account: str


@dataclass(frozen=True, slots=True)
class Mappings:
    """Immutable reference data. Plain dicts inside so that it pickles into snapshots."""

    labor: dict[str, LaborMapping] = field(default_factory=dict)
    tax: dict[str, Decimal] = field(default_factory=dict)
    fingerprint: str = ""

    @staticmethod
    def of(labor: dict[str, tuple[str, str]], tax: dict[str, Decimal | str]) -> Mappings:
        """Build mappings in code (tests, benchmarks); the fingerprint covers the content."""
        lab = {k: LaborMapping(*v) for k, v in labor.items()}
        tx = {k: Decimal(v) for k, v in tax.items()}
        digest = hashlib.sha256(
            repr((sorted(labor.items()), sorted((k, str(v)) for k, v in tx.items()))).encode()
        ).hexdigest()
        return Mappings(labor=lab, tax=tx, fingerprint=digest)


def _fail(path: Path, line: int, column: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(
        f"{path.name} line {line}: {problem}", field=f"{path}:{line}:{column}", fix=fix
    )


def _rows(path: Path, text: str, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise _fail(
            path, 1, "-", "the file is empty", f"add the header {','.join(columns)}"
        ) from None
    if tuple(h.strip() for h in header) != columns:
        raise _fail(
            path, 1, "header", f"header is {header!r}", f"the header must be {','.join(columns)}"
        )
    out: list[tuple[int, dict[str, str]]] = []
    for record in reader:
        line = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue  # blank lines are allowed
        if len(record) != len(columns):
            raise _fail(
                path,
                line,
                "-",
                f"{len(record)} fields, expected {len(columns)}",
                f"write exactly {','.join(columns)}",
            )
        row = {c: v.strip() for c, v in zip(columns, record, strict=True)}
        for c in columns:
            if not row[c]:
                raise _fail(path, line, c, f"{c} is empty", f"fill in {c}")
        out.append((line, row))
    return out


def _keyed(
    path: Path, text: str, columns: tuple[str, ...]
) -> Iterator[tuple[int, str, dict[str, str]]]:
    """The rows of a mapping file, each with its key (its first column), which may appear
    once; yielded one by one, so a row's own checks come before a later row's."""
    key = columns[0]
    seen: set[str] = set()
    for line, row in _rows(path, text, columns):
        value = row[key]
        if value in seen:
            raise _fail(path, line, key, f"duplicate {key} {value}", f"keep one row per {key}")
        seen.add(value)
        yield line, value, row


def parse_labor(path: Path, text: str) -> dict[str, LaborMapping]:
    return {
        category: LaborMapping(row["erp_item_code"], row["revenue_account"])
        for _line, category, row in _keyed(path, text, LABOR_COLUMNS)
    }


def parse_tax(path: Path, text: str) -> dict[str, Decimal]:
    tax: dict[str, Decimal] = {}
    for line, jurisdiction, row in _keyed(path, text, TAX_COLUMNS):
        try:
            rate = Decimal(row["tax_rate"])
        except InvalidOperation:
            raise _fail(
                path,
                line,
                "tax_rate",
                f"tax_rate {row['tax_rate']!r} is not a decimal",
                "write the rate as a decimal fraction, e.g. 0.20",
            ) from None
        if not rate.is_finite() or rate < 0 or rate >= 1:
            raise _fail(
                path,
                line,
                "tax_rate",
                f"tax_rate {rate} is outside [0, 1)",
                "write the rate as a decimal fraction, e.g. 0.20 for 20%",
            )
        tax[jurisdiction] = rate
    return tax


def load_mappings(directory: Path | str | None = None) -> Mappings:
    """Read both CSV files of ``directory`` (default: ``dataflows/reference``)."""
    base = Path(directory) if directory is not None else DEFAULT_DIRECTORY
    digest = hashlib.sha256()
    texts: dict[str, str] = {}
    for name, columns in ((LABOR_FILE, LABOR_COLUMNS), (TAX_FILE, TAX_COLUMNS)):
        path = base / name
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read mapping file {path}: {exc.strerror}",
                field=str(path),
                fix=f"restore {name} (header {','.join(columns)})",
            ) from None
        try:
            texts[name] = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _fail(
                path, 1, "-", f"not UTF-8 ({exc.reason})", "save the file as UTF-8"
            ) from None
        digest.update(name.encode() + b"\0" + raw + b"\0")
    return Mappings(
        labor=parse_labor(base / LABOR_FILE, texts[LABOR_FILE]),
        tax=parse_tax(base / TAX_FILE, texts[TAX_FILE]),
        fingerprint=digest.hexdigest(),
    )
