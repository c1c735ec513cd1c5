"""Everything that speaks SQS: the client (``client``), one batch call with per-entry retry
(``batch``), which failures to retry and how long to wait (``retry``), SQS's limits (``limits``),
queue URL helpers (``urls``) and the start-up queue checks (``checks``)."""
