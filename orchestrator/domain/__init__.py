"""The orchestrator's pure core: plain data and decisions, no ORM and no Agents SDK.

team (the registry snapshot), routing_policy (where a turn starts), health (circuit
breakers), recovery (what next after a model failure), workflows (workflow plans),
events (what a turn reports to its caller), enums and exceptions. Checked by the
import-linter contracts in pyproject.toml.
"""
