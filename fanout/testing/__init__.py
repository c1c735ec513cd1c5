"""Test support that the test suite and the bench both import (neither imports the other).

- ``faultproxy``: a fault-injecting reverse proxy for SQS (throttles, 5xx, resets, partial batch
  failures, delays), to run fanout or any SQS client against injected faults.
- ``accounting``: seeded Genesys traffic, running fanout (in-process or as a subprocess), and
  reading every target and the DLQ back to prove no event was lost.
- ``rulesets``: realistic generated rule sets of any size for the rule-engine bench and tests.

Nothing in the service imports this package; it needs only fanout's own dependencies.
"""
