"""The chat's statuses are StrEnums the models take their choices from."""

from chat.enums import MessageStatus, Role, TurnStatus
from chat.models import Message, Turn
from orchestrator.domain.enums import TurnResult


def test_models_take_their_choices_from_the_enums():
    assert Message._meta.get_field("role").choices == Role.choices()
    assert Message._meta.get_field("status").choices == MessageStatus.choices()
    assert Turn._meta.get_field("status").choices == TurnStatus.choices()


def test_a_turn_result_is_a_turn_status():
    assert {r.value for r in TurnResult} <= {s.value for s in TurnStatus}
