"""The enums are their values (rows, JSON and frames carry plain strings), and the
models take their choices from them."""

from __future__ import annotations

import json

from orchestrator.domain.enums import BreakerState, RunStatus, StepStatus
from orchestrator.models import AgentHealth, AgentRun, StepRun


def test_members_are_their_values():
    assert RunStatus.OK == "ok" and json.dumps({"s": RunStatus.HANDOFF}) == '{"s": "handoff"}'
    assert BreakerState("half_open") is BreakerState.HALF_OPEN
    assert BreakerState.OPEN.label == "Open (skipped by routing)"


def test_models_take_their_choices_from_the_enums():
    assert AgentRun._meta.get_field("status").choices == RunStatus.choices()
    assert AgentHealth._meta.get_field("state").choices == BreakerState.choices()
    assert StepRun.Status is StepStatus
