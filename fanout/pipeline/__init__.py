"""The message pipeline: the life of a message, from ReceiveMessage to DeleteMessageBatch.

Wired once, in fanout.service.Service. Every step below names the function that does it.

The happy path:

1. ``Poller.run`` reserves room (``InFlight.reserve``), calls ReceiveMessage, wraps each
   message (``Received.from_sqs``), registers it (``InFlight.admit``) and puts it on the work
   queue.
2. ``Worker.run`` takes it; ``Worker.handle`` validates it (``fanout.events.parse_event``) and
   matches it (``RuleSet.match``): the targets, in rule order.
3. ``Settler.expect`` records how many copies to wait for; ``make_copies`` builds one Copy per
   target (the body untouched); ``QueueSender.submit`` hands each to its target's ``Batcher.add``.
4. A full batch, or one whose linger ran out, goes out in ``QueueSender._send``:
   ``fanout.aws.batch.call_batch`` calls SendMessageBatch and retries only the failed entries,
   with backoff, for FANOUT_RETRY_MAX_SECONDS while the target throttles or fails. A FIFO
   target's ``GroupBatcher`` sends one copy per group per batch and the group's next copy only
   once that one is settled, so each group keeps its order whatever is retried.
5. Each accepted copy is reported to ``Settler.copy_settled`` (the ``OnSettled`` callback).
   After the last one, ``Acker.delete`` batches a DeleteMessageBatch; ``Acker._delete_settled``
   frees the message's slot (``InFlight.remove``). No rule matched and no default targets:
   ``Settler.ack`` deletes it at once.
   While copies retry, ``Acker.heartbeat`` (``extend_due``) keeps held messages invisible.

The DLQ path:

D1. The event cannot be routed: ``parse_event`` raises ``InvalidEvent`` (invalid_json,
    invalid_envelope, invalid_detail), ``RuleSet.match`` raises ``RuleError`` (rule_error), or
    a bug raises (internal_error). ``Worker`` calls ``Settler.dead_letter``, which builds the
    record (``dlq.build_record``).
D2. Or a copy failed for good (a non-retryable error, retries spent, larger than the queue
    allows): ``Settler.copy_settled`` keeps the failure on the message; after its last copy,
    ``dlq.delivery_failure_record`` names the failed targets only (target_rejected).
D3. ``DeadLetters.write`` sends the record (original body, reason, error, attributes) through
    the DLQ's own QueueSender, the same batching and retries as a target.
D4. ``DeadLetters._record_settled``: the DLQ accepted it -> ``Acker.delete`` deletes the source
    message. The DLQ refused it, or there is no DLQ -> ``Acker.abandon``: the message stays in
    the source queue and comes back after its visibility timeout; the source queue's redrive
    policy is the last line of defence. Nothing is deleted that was not delivered or recorded.

Shutdown (``Service._shutdown``): the pollers stop, unprocessed messages are released
(``Acker.release``, visibility 0), in-flight copies drain, and what is left when
FANOUT_SHUTDOWN_TIMEOUT_SECONDS runs out is released.
"""
