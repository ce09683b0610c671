"""The orchestrator's exceptions. Each message is plain words, safe to show a person."""

from __future__ import annotations


class ContextError(ValueError):
    """A shared-context operation that cannot be done."""


class WorkflowError(ValueError):
    """A workflow that cannot be started."""


class DefinitionError(ValueError):
    """A workflow definition that does not hold together; the message says where."""


class StepFailed(RuntimeError):
    """A workflow step's agent could not produce an answer; the message says why."""


class ProviderNotConfigured(RuntimeError):
    """An agent asks for a provider this server has no credentials or URL for."""


class NoAgentAvailable(LookupError):
    """Routing found no enabled agent to start a turn with."""
