"""Tools are built once per (agent, tools) and a workflow step gets no execute_workflow."""

from __future__ import annotations

from orchestrator.domain.team import AgentSpec
from orchestrator.sdk.tools import ToolCache

SPEC = AgentSpec(
    slug="billing",
    name="Billing",
    role="specialist",
    instructions="",
    handoff_description="",
    provider="local",
    model_name="",
    enabled=True,
    tools=("execute_workflow", "search_knowledge", "no_such_tool"),
)


def test_tools_are_built_once_and_in_a_stable_order():
    cache = ToolCache()
    first = cache.tools_for(SPEC)
    assert [t.name for t in first] == ["search_knowledge", "execute_workflow"]
    again = cache.tools_for(SPEC)
    assert [id(t) for t in again] == [id(t) for t in first]
    cache.reset()
    assert [id(t) for t in cache.tools_for(SPEC)] != [id(t) for t in first]


def test_a_workflow_step_cannot_start_workflows():
    assert [t.name for t in ToolCache().tools_for(SPEC, workflows=False)] == ["search_knowledge"]


def test_an_action_tool_has_the_actions_schema_without_our_own_keywords():
    from orchestrator.domain.actions import ActionSpec
    from orchestrator.domain.team import Team
    from orchestrator.sdk.tools import action_description

    schema = {
        "type": "object",
        "properties": {"amount": {"type": "string", "x-question": "How much?"}},
        "required": ["amount"],
    }
    action = ActionSpec(
        name="refund", description="Refund it.", examples=("refund 5.00",), schema=schema
    )
    spec = SPEC.__class__(**{**SPEC.__dict__, "actions": ("refund", "gone")})
    team = Team(agents={"billing": spec}, actions={"refund": action})
    tools = ToolCache().tools_for(spec, team=team)
    (tool,) = [t for t in tools if t.name == "refund"]
    assert tool.params_json_schema == {
        "type": "object",
        "properties": {"amount": {"type": "string"}},
        "required": ["amount"],
    }
    assert tool.description == action_description(action) and "“refund 5.00”" in tool.description
