"""Running many pipelines on one host: ``fanout run --processes N`` (``supervisor``) and the
CPU count ``auto`` resolves to (``cpus``)."""
