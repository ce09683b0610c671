"""The chat's system checks (chat/checks.py): each bad setting is named, all at once."""

from chat.checks import turn_runner_check


def ids(settings) -> list[str]:
    return sorted(error.id for error in turn_runner_check(None))


def test_the_default_settings_pass(settings):
    assert ids(settings) == []


def test_every_bad_turn_setting_is_reported_together(settings):
    settings.SUPERORCH_MAX_ACTIVE_TURNS = -1
    settings.SUPERORCH_TURN_LAG_TARGET = 0
    settings.SUPERORCH_TURN_RUNNER = "threads"
    assert ids(settings) == ["chat.E001", "chat.E003", "chat.E004"]


def test_turns_on_celery_need_a_shared_channel_layer(settings):
    settings.SUPERORCH_TURN_RUNNER = "celery"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/7"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert ids(settings) == ["chat.E002"]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    assert ids(settings) == []


def test_the_roles_settings_are_checked(settings):
    from chat.checks import roles_check

    assert roles_check(None) == []
    settings.SUPERORCH_DEFAULT_STAFF_ROLE = "boss"
    settings.SUPERORCH_SUPPORT_APPROVAL_LIMIT = "lots"
    assert sorted(e.id for e in roles_check(None)) == ["chat.E005", "chat.E006"]
    settings.SUPERORCH_DEFAULT_STAFF_ROLE = "Viewer"
    settings.SUPERORCH_SUPPORT_APPROVAL_LIMIT = "99.50"
    assert roles_check(None) == []
