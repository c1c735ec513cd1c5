"""The ``fanout rules`` and ``fanout dlq`` commands and what every command shares."""
