"""deploy/cloudformation/fanout-queues.yaml deployed to LocalStack, then used end to end.

The stack is created as an operator would create it, with one difference: LocalStack cannot
model a partner event source, so the rule goes on a custom bus passed through the template's
EventBusName parameter (README.md, Deploying). Genesys-shaped events are put on that bus with
PutEvents; the stack's rule delivers them to the stack's source queue, `python -m fanout run`
with the shipped rules.yaml and the stack's outputs as its ${VAR}s drains it, and each event
comes out of the stack's target queues its rules name.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aioboto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.e2e.test_routing_e2e import (
    BILLING_QUEUE,
    ESCALATED_TO_TIER_2,
    correlation_id,
    put_events,
    run_fanout,
    target_env_vars,
    wait_for_depth,
)
from tests.support.harness import Harness, bodies_of, conversation, simplified

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "cloudformation" / "fanout-queues.yaml"
STACK_TIMEOUT = 120.0


async def wait_stack(cfn: Any, name: str) -> dict[str, Any]:
    """The stack once no operation is in progress; a deleted stack that CloudFormation no
    longer describes by name (LocalStack) reads as DELETE_COMPLETE."""
    deadline = time.monotonic() + STACK_TIMEOUT
    while True:
        try:
            stack: dict[str, Any] = (await cfn.describe_stacks(StackName=name))["Stacks"][0]
        except ClientError as exc:
            if "does not exist" not in str(exc):
                raise
            return {"StackStatus": "DELETE_COMPLETE"}
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            return stack
        assert time.monotonic() < deadline, f"stack {name} still {status} after {STACK_TIMEOUT}s"
        await asyncio.sleep(0.5)


def _client(service: str, endpoint: str) -> Any:
    return aioboto3.Session().client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
async def queues_stack(
    localstack_endpoint: str, ls_events: Any, e2e_prefix: str
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A custom bus and the queues stack on it: (bus name, {output key or export name without
    the stack name: value}), queue URLs pointed at LocalStack's loopback endpoint. Stack and bus
    are deleted afterwards."""
    prefix = e2e_prefix.rstrip("-")
    bus, stack = f"{prefix}-bus", f"{prefix}-queues"
    await ls_events.create_event_bus(Name=bus)
    async with _client("cloudformation", localstack_endpoint) as cfn:
        try:
            await cfn.create_stack(
                StackName=stack,
                TemplateBody=TEMPLATE.read_text(),
                Parameters=[
                    {"ParameterKey": "NamePrefix", "ParameterValue": prefix},
                    {"ParameterKey": "EventBusName", "ParameterValue": bus},
                ],
            )
            created = await wait_stack(cfn, stack)
            assert created["StackStatus"] == "CREATE_COMPLETE", created.get("StackStatusReason")
            outputs: dict[str, str] = {}
            for output in created["Outputs"]:
                value = output["OutputValue"]
                if value.startswith("http"):
                    # LocalStack puts its own host name in queue URLs; the path is what counts.
                    value = localstack_endpoint + urlsplit(value).path
                outputs[output["OutputKey"]] = value
                if "ExportName" in output:  # e.g. CRITICAL_QUEUE_URL for the rules' ${VAR}
                    outputs[output["ExportName"].removeprefix(f"{stack}-")] = value
            yield bus, outputs
        finally:
            await cfn.delete_stack(StackName=stack)
            deleted = await wait_stack(cfn, stack)
            assert deleted["StackStatus"] == "DELETE_COMPLETE", deleted.get("StackStatusReason")
            await ls_events.delete_event_bus(Name=bus)


async def test_the_stack_routes_genesys_events_through_fanout(
    localstack_endpoint: str,
    ls_sqs: Any,
    ls_events: Any,
    ls_harness: Harness,
    queues_stack: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    h = ls_harness
    bus, outputs = queues_stack
    source, dlq = outputs["SourceQueueUrl"], outputs["DlqUrl"]
    # The stack exports one URL per ${VAR} of the shipped rules.yaml, under the variable's name.
    env = {variable: outputs[variable] for variable in target_env_vars().values()}
    url_of = {name: env[variable] for name, variable in target_env_vars().items()}

    await assert_stack_resources(localstack_endpoint, ls_sqs, ls_events, bus, outputs)

    events = [
        (
            conversation("acd.end", mediaType="VOICE", acdOutcome="ABANDON", queueId=BILLING_QUEUE),
            {"supervisors", "team-billing"},
        ),
        (
            conversation("acw", mediaType="VOICE", wrapupCode=ESCALATED_TO_TIER_2),
            {"quality", "wrapup-ledger"},
        ),
        (conversation("user.end", mediaType="VOICE", interactingDurationMs=1_000), set()),
    ]
    foreign = [simplified("critical")]  # not from the Genesys partner source: filtered out
    await put_events(ls_events, bus, [*(event for event, _ in events), *foreign])
    await wait_for_depth(h, source, len(events))

    summary = await run_fanout(localstack_endpoint, source, dlq, env, tmp_path)

    assert await h.depth(source) == (0, 0)
    assert summary["received"] == len(events), summary
    copies = {name: bodies_of(await h.drain(url)) for name, url in url_of.items()}
    for event, targets in events:
        got = {
            name
            for name, bodies in copies.items()
            if any(correlation_id(body) == correlation_id(event) for body in bodies)
        }
        assert got == targets, f"{event['detail-type']}: {sorted(got)} != {sorted(targets)}"
    assert all(
        body["source"].startswith("aws.partner/genesys.com") for b in copies.values() for body in b
    )
    assert await h.drain(dlq) == []


async def assert_stack_resources(
    endpoint: str, sqs: Any, events: Any, bus: str, outputs: dict[str, str]
) -> None:
    """What the template promises, read back from LocalStack: redrive policy, SSE, the queue
    policy naming only the rule, the rule on the bus, and the IAM policy's actions."""
    attrs = (
        await sqs.get_queue_attributes(QueueUrl=outputs["SourceQueueUrl"], AttributeNames=["All"])
    )["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(
        urlsplit(outputs["SourceRedriveDlqUrl"]).path.rsplit("/", 1)[1]
    )
    assert int(redrive["maxReceiveCount"]) == 5
    assert attrs.get("SqsManagedSseEnabled") == "true"
    (statement,) = json.loads(attrs["Policy"])["Statement"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == outputs["GenesysRuleArn"]
    assert statement["Action"] in ("sqs:SendMessage", ["sqs:SendMessage"])

    rule_name = outputs["GenesysRuleArn"].rsplit("/", 1)[1]
    rule = await events.describe_rule(Name=rule_name, EventBusName=bus)
    assert json.loads(rule["EventPattern"]) == {"source": [{"prefix": "aws.partner/genesys.com"}]}
    (target,) = (await events.list_targets_by_rule(Rule=rule_name, EventBusName=bus))["Targets"]
    assert target["Arn"] == attrs["QueueArn"]

    async with _client("iam", endpoint) as iam:
        arn = outputs["FanoutPolicyArn"]
        version = (await iam.get_policy(PolicyArn=arn))["Policy"]["DefaultVersionId"]
        document = (await iam.get_policy_version(PolicyArn=arn, VersionId=version))[
            "PolicyVersion"
        ]["Document"]
    if isinstance(document, str):
        document = json.loads(document)
    actions = {statement["Sid"]: sorted(statement["Action"]) for statement in document["Statement"]}
    assert actions == {
        "SourceQueue": [
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ],
        "TargetsAndDlq": ["sqs:GetQueueAttributes", "sqs:SendMessage"],
    }
