"""The embedded local run (``fanout run --local``, ``make run``): an in-process moto SQS server
fed with synthetic Genesys Cloud traffic (``synthetic``), with the real pipeline (``run``)."""
