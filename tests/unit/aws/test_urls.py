"""urls.py: a queue's name, region and FIFO-ness from its URL (pure)."""

from __future__ import annotations

import pytest

from fanout.aws.urls import is_fifo, queue_name, region_of

AWS = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
LEGACY = "https://eu-west-1.queue.amazonaws.com/123456789012/orders"
LOCAL = "http://127.0.0.1:4566/000000000000/orders.fifo"


@pytest.mark.parametrize(
    ("url", "name"),
    [(AWS, "orders"), (AWS + "/", "orders"), (LOCAL, "orders.fifo"), ("orders", "orders")],
)
def test_queue_name_is_the_last_path_segment(url: str, name: str) -> None:
    assert queue_name(url) == name


@pytest.mark.parametrize(
    ("url", "region"),
    [
        (AWS, "eu-west-1"),
        ("http://sqs.us-gov-west-1.amazonaws.com/1/q", "us-gov-west-1"),
        (LEGACY, None),
        (LOCAL, None),
    ],
)
def test_region_of_standard_aws_urls_only(url: str, region: str | None) -> None:
    assert region_of(url) == region


def test_is_fifo_by_name_suffix() -> None:
    assert is_fifo(LOCAL)
    assert not is_fifo(AWS)
    assert not is_fifo("https://sqs.us-east-1.amazonaws.com/1/fifo")  # a name, not the suffix
