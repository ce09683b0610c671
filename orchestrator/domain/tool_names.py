"""Names and user-facing labels of the tools agents may be given.

Kept free of SDK imports so models, forms and the admin can use it.
"""

TOOL_LABELS: dict[str, str] = {
    "search_knowledge": "Searching the knowledge base",
    "route_request": "Finding the right specialist",
    "monitor_agent_performance": "Checking how the team is doing",
    "manage_context_operation": "Updating the conversation notes",
    "execute_workflow": "Running a workflow",
    "escalate_to_human": "Asking a person from the team to join",
}

TOOL_CHOICES = [(name, f"{name}: {label}") for name, label in TOOL_LABELS.items()]


ACTION_LABEL = "Checking with our systems"  # any action on the site's systems (docs/actions.md)


def tool_label(name: str, *, action: bool = False) -> str:
    return TOOL_LABELS.get(name) or (ACTION_LABEL if action else "Working on it")
