"""Names and user-facing labels of the tools agents may be given.

Kept free of SDK imports so models, forms and the admin can use it. The labels are shown
in the chat's typing line, translated there (chat.turns.runner).
"""

from .words import _

TOOL_LABELS: dict[str, str] = {
    "search_knowledge": _("Searching the knowledge base"),
    "route_request": _("Finding the right specialist"),
    "monitor_agent_performance": _("Checking how the team is doing"),
    "manage_context_operation": _("Updating the conversation notes"),
    "execute_workflow": _("Running a workflow"),
    "escalate_to_human": _("Asking a person from the team to join"),
}

TOOL_CHOICES = [(name, f"{name}: {label}") for name, label in TOOL_LABELS.items()]


ACTION_LABEL = _("Checking with our systems")  # any action on the site's systems (docs/actions.md)

WORKING = _("Working on it")


def tool_label(name: str, *, action: bool = False) -> str:
    return TOOL_LABELS.get(name) or (ACTION_LABEL if action else WORKING)
