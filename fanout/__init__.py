"""fanout: asyncio SQS fan-out for Genesys Cloud events delivered by AWS EventBridge.

The house, one subpackage per concern (docs/architecture/modules.md lists every module):

- ``fanout.pipeline``: the life of a message (poll, validate+match, batch+send, settle, DLQ, ack).
- ``fanout.aws``: SQS itself (client, batch call with retry, limits, URLs, start-up checks).
- ``fanout.rules``: the rule engine (pure; imports nothing from the pipeline).
- ``fanout.observability``: telemetry, health endpoints, run counters.
- ``fanout.local``: the embedded local run and its synthetic Genesys traffic.
- Top level: ``cli``, ``config`` (the one Settings), ``service`` (the one wiring place),
  ``events`` (validation), ``outcomes`` (the vocabulary), ``errors``, ``signals``, ``jsontypes``.
"""

__version__ = "0.1.0"
