"""Credential outages (fanout.aws.outage) and their classification (fanout.aws.retry): while
SQS refuses the credentials calls take turns, batches are held whole, never split."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError, CredentialRetrievalError, NoCredentialsError

from fanout.aws.batch import call_batch
from fanout.aws.outage import CredentialOutage
from fanout.aws.retry import CREDENTIAL_CODES, Backoff, Failure, classify_entry, classify_exception
from fanout.observability.stats import Stats, render_summary


def client_error(code: str, status: int = 400, operation: str = "SendMessageBatch") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


@pytest.mark.parametrize("code", sorted(CREDENTIAL_CODES))
def test_credential_codes_are_credential_failures(code: str) -> None:
    failure = classify_exception(client_error(code, 403))
    assert failure.credentials and not failure.retryable and failure.code == code


@pytest.mark.parametrize(
    "exc",
    [NoCredentialsError(), CredentialRetrievalError(provider="sts", error_msg="boom")],
)
def test_provider_chain_errors_are_credential_failures(exc: Exception) -> None:
    failure = classify_exception(exc)
    assert failure.credentials and failure.code == type(exc).__name__


def test_an_sts_refusal_while_refreshing_is_a_credential_failure() -> None:
    # AccessDenied from SQS is about a queue; from AssumeRoleWithWebIdentity about our role.
    assert classify_exception(
        client_error("AccessDenied", 403, "AssumeRoleWithWebIdentity")
    ).credentials
    assert not classify_exception(client_error("AccessDenied", 403)).credentials


@pytest.mark.parametrize("code", ["KMS.AccessDeniedException", "KmsAccessDenied", "AccessDenied"])
def test_kms_and_iam_denials_are_the_queues_not_the_credentials(code: str) -> None:
    failure = classify_exception(client_error(code))
    assert not failure.credentials and not failure.retryable


def test_a_credential_code_on_an_entry() -> None:
    failure = classify_entry({"Id": "0", "Code": "ExpiredToken", "SenderFault": True})
    assert failure.credentials and not failure.retryable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_outage(
    stats: Stats, *, grace: float = 10.0, budget: float = 60.0, **kw: Any
) -> CredentialOutage:
    return CredentialOutage(
        backoff=Backoff(base=0.001, cap=0.002),
        rng=random.Random(3),
        stats=stats,
        grace=grace,
        budget=budget,
        **kw,
    )


class Expiring:
    """SendMessageBatch refusing the credentials for the first ``refusals`` calls; counts
    the calls in flight at once."""

    def __init__(self, refusals: int, outage: CredentialOutage | None = None) -> None:
        self.refusals = refusals
        self.outage = outage
        self.calls = 0
        self.refused = 0
        self.probing = 0  # calls out that started during an outage
        self.most_probing = 0

    async def __call__(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        self.calls += 1
        probe = self.outage is not None and self.outage.ongoing
        self.probing += probe
        self.most_probing = max(self.most_probing, self.probing)
        try:
            await asyncio.sleep(0.001)
            if self.refused < self.refusals:
                self.refused += 1
                raise client_error("ExpiredToken")
            return {"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []}
        finally:
            self.probing -= probe


async def send_batches(
    call: Expiring, outage: CredentialOutage | None, batches: int, *, attempts: int = 3
) -> dict[str, Failure | None]:
    results: dict[str, Failure | None] = {}
    stats = Stats()

    def settle(item: str, failure: Failure | None) -> None:
        assert item not in results, f"{item} settled twice"
        results[item] = failure

    await asyncio.gather(
        *(
            call_batch(
                "SendMessageBatch",
                call,
                [f"{b}-{i}" for i in range(10)],
                lambda body: {"MessageBody": body},
                settle,
                backoff=Backoff(max_attempts=attempts, base=0.001, cap=0.002),
                rng=random.Random(b),
                stats=stats,
                outage=outage,
            )
            for b in range(batches)
        )
    )
    assert len(results) == 10 * batches
    return results


async def test_refused_credentials_hold_the_batch_whole_until_they_work() -> None:
    stats = Stats()
    refreshed: list[int] = []

    async def refresh() -> None:
        refreshed.append(1)

    outage = make_outage(stats, refresh=refresh)
    call = Expiring(refusals=40)  # far more than 3 attempts per batch
    results = await send_batches(call, outage, batches=8)
    assert all(f is None for f in results.values())  # every entry delivered, none failed
    # Each call carried a whole batch of 10 (no per-entry split): 8 batches + 40 refusals.
    assert call.calls == 8 + 40
    assert stats.credential_errors == {"ExpiredToken": 40}
    assert refreshed, "the credentials were never refreshed"
    assert not outage.ongoing


async def test_during_an_outage_calls_go_one_at_a_time() -> None:
    outage = make_outage(Stats())
    call = Expiring(refusals=30, outage=outage)
    results = await send_batches(call, outage, batches=10)
    assert all(f is None for f in results.values())
    # The first refusals come from the 10 calls already out together; every call started
    # during the outage went alone (a probe), until one was answered.
    assert call.most_probing == 1
    assert call.calls == 10 + 30


async def test_without_an_outage_object_the_batch_gives_up_by_attempts_whole() -> None:
    call = Expiring(refusals=10**6)
    results = await send_batches(call, None, batches=1, attempts=3)
    assert call.calls == 3  # retried whole, never split per entry
    failures = [f for f in results.values() if f is not None]
    assert len(failures) == 10 and all(f.credentials and f.code == "ExpiredToken" for f in failures)


async def test_held_entries_give_up_after_the_outage_budget_still_as_credential_failures() -> None:
    outage = make_outage(Stats(), budget=0.05)
    call = Expiring(refusals=10**6)
    results = await send_batches(call, outage, batches=2, attempts=2)
    failures = [f for f in results.values() if f is not None]
    assert len(failures) == 20 and all(f.credentials for f in failures)


async def test_past_the_grace_receiving_pauses_and_readiness_fails_until_a_call_works() -> None:
    clock = Clock()
    stats = Stats()
    outage = make_outage(stats, grace=10.0, clock=clock)
    outage.failed("ExpiredToken")
    assert outage.ongoing and outage.not_ready_reason() is None  # within the grace
    clock.now += 10.0
    assert outage.not_ready_reason() is None  # past the grace, but nothing waits to be sent
    outage.holding = 1  # a call waits for its turn
    assert outage.paused
    reason = outage.not_ready_reason()
    assert reason is not None and "ExpiredToken" in reason
    gate = asyncio.create_task(outage.wait_open())
    await asyncio.sleep(0.01)
    assert not gate.done()
    outage.succeeded()
    await asyncio.wait_for(gate, 1.0)
    assert not outage.ongoing and outage.not_ready_reason() is None
    assert "credentials  ExpiredToken=1" in render_summary(stats.summary())


async def test_nothing_held_nothing_paused() -> None:
    # Once every held call gave up, a receive may bring work that probes again.
    clock = Clock()
    outage = make_outage(Stats(), grace=1.0, clock=clock)
    outage.failed("ExpiredToken")
    clock.now += 5
    assert outage.past_grace and not outage.paused and outage.not_ready_reason() is None
    await asyncio.wait_for(outage.wait_open(), 1.0)


async def test_a_failing_refresh_is_counted_and_the_probe_still_goes() -> None:
    stats = Stats()

    async def refresh() -> None:
        raise CredentialRetrievalError(provider="container-role", error_msg="connection refused")

    outage = make_outage(stats, refresh=refresh)
    call = Expiring(refusals=2)
    results = await send_batches(call, outage, batches=1)
    assert all(f is None for f in results.values())
    assert stats.credential_errors["CredentialRetrievalError"] >= 1
