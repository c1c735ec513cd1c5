"""The pipeline's public message builders: how a copy, its attributes and a DLQ record are made.

The DLQ tools (``fanout.ops.redrive``) resend records with exactly the bytes and attributes the
pipeline would have sent, so they build them with the pipeline's own functions. They import them
from here, the one module of the pipeline that outside packages may use (an import-linter
contract in pyproject.toml keeps it so); the rest of the pipeline can change freely.
"""

from __future__ import annotations

from fanout.pipeline.batching import pack
from fanout.pipeline.dlq import dlq_target, encode_record, record_attributes
from fanout.pipeline.inflight import Received
from fanout.pipeline.sender import Copy, make_copies, make_copy, outgoing_attributes

__all__ = [
    "Copy",
    "Received",
    "dlq_target",
    "encode_record",
    "make_copies",
    "make_copy",
    "outgoing_attributes",
    "pack",
    "record_attributes",
]
