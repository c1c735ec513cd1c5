"""Genesys Cloud knowledge (pure): the topic catalog generated from the official SDK
(``generate``, development time only), its loader (``catalog``), the type checks validation
applies from it (``strict``), catalog-shaped bodies (``sample``) and ``fanout topics`` (``cli``).
Nothing here imports the message pipeline."""
