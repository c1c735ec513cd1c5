"""No PII and no credentials in any output: a real `fanout run` at DEBUG, with spans and metrics
printed by the console exporters, routes, drops and dead-letters events full of phone numbers,
addresses, names and emails; every byte it writes is grepped for them."""

from __future__ import annotations

import os

import orjson
import pytest

from fanout.aws.urls import queue_name
from tests.support.harness import PII, Harness, dumps, pii_event, run_fanout_cli

pytestmark = pytest.mark.integration

# Distinctive dummy credentials: the standard provider chain (env) hands them to the SDK.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAPIITESTMARKER0042",
    "AWS_SECRET_ACCESS_KEY": "sEcReTpIiMaRkEr/0042+dOnOtPrInT",
    "AWS_SESSION_TOKEN": "tOkEnPiImArKeR0042",
}


async def test_no_pii_or_credentials_in_logs_spans_or_metrics(harness: Harness) -> None:
    h = harness
    source, dlq, voice = [await h.queue(n) for n in ("src-pii", "dlq-pii", "voice-pii")]
    rules = h.rules(
        f"""
targets:
  voice: {{queue_url: "{voice}"}}
rules:
  - id: long-voice
    condition: detail.eventBody.interactingDurationMs > `600000`
    targets: [voice]
  - id: by-name
    condition: detail.eventBody.customerName > `1`
    targets: [voice]
"""
    )
    routed = pii_event(interactingDurationMs=700000)
    del routed["detail"]["eventBody"]["customerName"]  # so by-name is null, not an error
    bodies = [
        dumps(routed),  # routed to voice
        dumps(pii_event(interactingDurationMs=700000)),  # rule_error: by-name on a string
        dumps(pii_event(interactingDurationMs="long")),  # invalid_detail
        f"not json {PII['ani']} {PII['customerEmail']}",  # invalid_json
        dumps({"detail": PII}),  # invalid_envelope
    ]
    await h.send(source, bodies)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FANOUT_"))}
    env.update(CREDENTIALS)
    env.update(
        {
            "FANOUT_SOURCE_QUEUE_URL": source,
            "FANOUT_DLQ_URL": dlq,
            "FANOUT_ENDPOINT_URL": h.endpoint,
            "FANOUT_REGION": "us-east-1",
            "FANOUT_RULES": str(rules),
            "FANOUT_WAIT_TIME_SECONDS": "1",
            "FANOUT_POLLERS": "1",
            "FANOUT_MAX_POLLERS": "1",
            "FANOUT_LOG_LEVEL": "DEBUG",
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_METRICS_EXPORTER": "console",
        }
    )
    code, out, err = await run_fanout_cli("run", "--exit-when-idle", "1", env=env, timeout=120)
    assert code == 0, err

    # The run really happened and really exported: otherwise the grep below proves nothing.
    assert f'"process {queue_name(source)}"' in out and "messaging.process.duration" in out, out[
        -2000:
    ]
    assert "DEBUG" in err  # fanout's own DEBUG lines (service: tuning) are in the logs checked
    dead = [orjson.loads(m["Body"]) for m in await h.drain(dlq)]
    assert sorted(d["reason"] for d in dead) == [
        "invalid_detail",
        "invalid_envelope",
        "invalid_json",
        "rule_error",
    ]
    [copy] = await h.drain(voice)
    assert PII["ani"] in copy["Body"]  # the copy is the original body: PII reached its target
    # The DLQ keeps the original body on purpose (redrive); that is a queue, not an output.
    assert any(PII["ani"] in d["body"] for d in dead)

    for secret in [*PII.values(), *CREDENTIALS.values()]:
        assert secret not in out, f"{secret!r} in stdout (spans/metrics)"
        assert secret not in err, f"{secret!r} in stderr (logs)"
    # Fragments too: a number with its "tel:" stripped, or an email's local part.
    for fragment in ("4915199887766", "piimarker.from", "ottilie.piimarker", "Piimarker"):
        assert fragment not in out + err, fragment
