"""The rule engine (pure): which targets an event goes to.

``loader`` reads rules.yaml (safe YAML, schema, ``${VAR}`` URLs) into the ``model`` (targets,
rules, ``RuleSet.match``). Conditions are JMESPath compiled to closures (``jmescompile``) or
EventBridge patterns (``patterns``); ``index`` picks the candidate rules for an event. ``cli``
is ``fanout rules check|test``; ``lint`` reads rules against the Genesys topic catalog
(fanout.genesys). Nothing here imports the message pipeline.
"""

from fanout.rules.loader import load_rules, load_rules_unresolved
from fanout.rules.model import FifoSettings, Match, Rule, RuleError, RuleSet, Target

__all__ = [
    "FifoSettings",
    "Match",
    "Rule",
    "RuleError",
    "RuleSet",
    "Target",
    "load_rules",
    "load_rules_unresolved",
]
