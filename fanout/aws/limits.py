"""SQS's limits, in one place: every module that packs, receives or names things reads them here.

Source: the Amazon SQS Developer Guide, "Amazon SQS quotas" (messages, batch calls, FIFO ids).
"""

from __future__ import annotations

import re

# Batch calls (SendMessageBatch, DeleteMessageBatch, ChangeMessageVisibilityBatch): 10 entries.
MAX_BATCH_ENTRIES = 10
# ReceiveMessage's MaxNumberOfMessages.
MAX_RECEIVE = 10
# Since 2025 one message and one whole batch may each be 1 MiB (older queues keep a lower
# MaximumMessageSize: the start-up check reads each queue's own).
MAX_MESSAGE_BYTES = 1_048_576
# Message attributes per message.
MAX_MESSAGE_ATTRIBUTES = 10
# ReceiveMessage's longest long poll.
MAX_WAIT_TIME_SECONDS = 20
# MessageGroupId / MessageDeduplicationId: 1-128 printable ASCII characters.
FIFO_ID = re.compile(r"[!-~]{1,128}")
