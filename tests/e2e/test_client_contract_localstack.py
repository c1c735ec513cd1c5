"""The data-plane client contract (tests/integration/test_client_contract.py) on LocalStack:
the same scenarios, run against both clients (FANOUT_SQS_CLIENT=sdk|lean), identical outcomes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import test_client_contract as contract


async def test_round_trip(localstack_endpoint: str, ls_sqs: Any) -> None:
    await contract.test_send_receive_delete_round_trip(localstack_endpoint, ls_sqs)


async def test_fifo_send_parameters(localstack_endpoint: str, ls_sqs: Any) -> None:
    await contract.test_fifo_send_parameters(localstack_endpoint, ls_sqs)


async def test_partial_batch_failures(localstack_endpoint: str, ls_sqs: Any) -> None:
    await contract.test_partial_batch_failures(localstack_endpoint, ls_sqs)


@pytest.mark.parametrize(("operation", "params"), contract.NON_EXISTENT_CASES)
async def test_non_existent_queue(localstack_endpoint: str, operation: str, params: Any) -> None:
    await contract.test_non_existent_queue(localstack_endpoint, operation, params)


async def test_invalid_receive_parameter(localstack_endpoint: str, ls_sqs: Any) -> None:
    await contract.test_invalid_receive_parameter(localstack_endpoint, ls_sqs)
