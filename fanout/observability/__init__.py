"""What fanout tells its operators: OpenTelemetry traces and metrics (``telemetry``), the
health endpoints (``health``) and the run's counters behind the exit summary (``stats``)."""
