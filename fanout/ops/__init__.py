"""On-call tools: ``fanout dlq inspect`` / ``fanout dlq redrive`` (records, reader, redrive) and
the rule-change preview behind ``fanout rules diff`` (rulediff)."""
