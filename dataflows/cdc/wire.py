"""The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then Avro binary."""

from __future__ import annotations

MAGIC = 0
HEADER_SIZE = 5


class WireFormatError(ValueError):
    """The bytes are not framed in the Confluent wire format."""


def schema_id_of(payload: bytes) -> int:
    """The schema id of a framed payload; :class:`WireFormatError` for anything else."""
    if len(payload) < HEADER_SIZE:
        raise WireFormatError(
            f"{len(payload)} bytes is shorter than the 5-byte Confluent header (magic + schema id)"
        )
    if payload[0] != MAGIC:
        raise WireFormatError(f"magic byte is {payload[0]:#04x}, not 0x00 (Confluent framing)")
    return int.from_bytes(payload[1:HEADER_SIZE], "big")


def frame(schema_id: int, avro: bytes) -> bytes:
    """Frame Avro bytes with their schema id (what a Confluent-compatible serializer writes)."""
    return bytes([MAGIC]) + schema_id.to_bytes(4, "big") + avro
