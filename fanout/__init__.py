"""fanout: asyncio SQS fan-out for Genesys Cloud events delivered by AWS EventBridge."""

__version__ = "0.1.0"
