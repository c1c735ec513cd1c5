"""The batch-call retry loop (fanout.aws.batch.call_batch) against a scripted fake call."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from fanout.aws.batch import call_batch
from fanout.aws.retry import Backoff, Failure
from fanout.observability.stats import Stats


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "SendMessageBatch",
    )


class Script:
    """Answers each call from a function of the entries' bodies; records what was sent."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.sent: list[list[str]] = []

    async def __call__(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        bodies = [e["MessageBody"] for e in entries]
        self.sent.append(bodies)
        return self.answer(entries, len(self.sent))  # type: ignore[no-any-return]


async def run(script: Script, items: list[str], attempts: int = 4) -> dict[str, Failure | None]:
    results: dict[str, Failure | None] = {}

    def settle(item: str, failure: Failure | None) -> None:
        assert item not in results, f"{item} settled twice"
        results[item] = failure

    await call_batch(
        "SendMessageBatch",
        script,
        items,
        lambda body: {"MessageBody": body},
        settle,
        backoff=Backoff(max_attempts=attempts, base=0.0, cap=0.0),
        rng=random.Random(1),
        stats=Stats(),
    )
    assert sorted(results) == sorted(items)  # every item settled exactly once
    return results


def ok(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []}


async def test_entry_specific_whole_call_error_is_isolated_by_sending_one_by_one() -> None:
    def answer(entries: list[dict[str, Any]], call: int) -> dict[str, Any]:
        if len(entries) > 1 or entries[0]["MessageBody"] == "bad":
            raise client_error("InvalidParameterValue")
        return ok(entries)

    script = Script(answer)
    results = await run(script, ["a", "bad", "c"])
    assert results["a"] is None and results["c"] is None
    assert results["bad"] is not None and results["bad"].code == "InvalidParameterValue"
    assert script.sent == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


async def test_queue_wide_error_fails_the_batch_without_splitting() -> None:
    def answer(entries: list[dict[str, Any]], call: int) -> dict[str, Any]:
        raise client_error("AWS.SimpleQueueService.NonExistentQueue")

    script = Script(answer)
    results = await run(script, ["a", "b"])
    assert {f.code for f in results.values() if f} == {"AWS.SimpleQueueService.NonExistentQueue"}
    assert len(script.sent) == 1


async def test_connection_errors_retry_the_whole_batch() -> None:
    def answer(entries: list[dict[str, Any]], call: int) -> dict[str, Any]:
        if call < 3:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
        return ok(entries)

    script = Script(answer)
    results = await run(script, ["a", "b"])
    assert results == {"a": None, "b": None}
    assert script.sent == [["a", "b"]] * 3


@pytest.mark.parametrize(("attempts", "delivered"), [(3, False), (4, True)])
async def test_failed_entries_retried_until_attempts_run_out(
    attempts: int, delivered: bool
) -> None:
    def answer(entries: list[dict[str, Any]], call: int) -> dict[str, Any]:
        if call < 4:  # "b" is throttled on the first three calls
            good = [e for e in entries if e["MessageBody"] != "b"]
            bad = [e for e in entries if e["MessageBody"] == "b"]
            return {
                "Successful": [{"Id": e["Id"]} for e in good],
                "Failed": [
                    {"Id": e["Id"], "Code": "ThrottlingException", "SenderFault": True} for e in bad
                ],
            }
        return ok(entries)

    script = Script(answer)
    results = await run(script, ["a", "b"], attempts=attempts)
    assert results["a"] is None
    assert script.sent[1:] == [["b"]] * (attempts - 1)  # only the failed entry is resent
    if delivered:
        assert results["b"] is None
    else:
        failure = results["b"]
        assert failure is not None and not failure.retryable
        assert failure.code == "ThrottlingException" and "gave up after 3" in failure.message


async def test_an_entry_missing_from_the_response_is_retried_not_lost() -> None:
    def answer(entries: list[dict[str, Any]], call: int) -> dict[str, Any]:
        return ok(entries[:1]) if call == 1 else ok(entries)

    script = Script(answer)
    assert await run(script, ["a", "b"]) == {"a": None, "b": None}
    assert script.sent == [["a", "b"], ["b"]]


async def test_throttled_entries_retry_until_the_time_budget_then_give_up() -> None:
    throttled = Script(lambda entries, n: (_ for _ in ()).throw(client_error("Throttling")))
    states: list[Failure | None] = []
    results: dict[str, Failure | None] = {}
    await call_batch(
        "SendMessageBatch",
        throttled,
        ["a"],
        lambda body: {"MessageBody": body},
        lambda item, failure: results.__setitem__(item, failure),
        backoff=Backoff(max_attempts=2, base=0.01, cap=0.01).with_budget(0.3),
        rng=random.Random(1),
        stats=Stats(),
        on_attempt=states.append,
    )
    # Far more than max_attempts: the budget, not the count, ended it.
    assert len(throttled.sent) > 5
    failure = results["a"]
    assert failure is not None and not failure.retryable and "gave up" in failure.message
    assert all(s is not None and s.code == "Throttling" for s in states)


async def test_throttle_that_ends_within_the_budget_delivers() -> None:
    def answer(entries: list[dict[str, Any]], n: int) -> dict[str, Any]:
        if n <= 8:
            raise client_error("RequestThrottled", 403)
        return ok(entries)

    script = Script(answer)
    states: list[Failure | None] = []
    results: dict[str, Failure | None] = {}
    await call_batch(
        "SendMessageBatch",
        script,
        ["a", "b"],
        lambda body: {"MessageBody": body},
        lambda item, failure: results.__setitem__(item, failure),
        backoff=Backoff(max_attempts=3, base=0.0, cap=0.0).with_budget(30.0),
        rng=random.Random(1),
        stats=Stats(),
        on_attempt=states.append,
    )
    assert results == {"a": None, "b": None}
    assert len(script.sent) == 9
    assert states[-1] is None and states[0] is not None  # failing, then working again
