"""A frame the Redis layer drops is counted and logged at WARNING (issue 12, defect 8)."""

from __future__ import annotations

import logging

from orchestrator import metrics
from superorch_site.settings.base import channel_layers


def _drops() -> float:
    return metrics.CHANNEL_LAYER_DROPS._value.get()


def test_an_over_capacity_line_is_counted_and_re_logged_at_warning(caplog):
    before = _drops()
    log = logging.getLogger("channels_redis.core")
    with caplog.at_level(logging.WARNING):
        log.info("%s of %s channels over capacity in group %s", 3, 4, "chat.x")
        log.info("an ordinary line of the layer")
    assert _drops() == before + 3
    lines = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "channels_redis.core"
    ]
    assert lines == [("WARNING", "3 of 4 channels over capacity in group chat.x")]


def test_the_redis_layer_gives_a_process_receive_key_room_for_its_streams():
    config = channel_layers("redis://127.0.0.1:6379/9")["default"]["CONFIG"]
    assert config["channel_capacity"] == {"specific.*": 50000}
    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(**config)
    assert layer.get_capacity("specific.abc!def") == 50000
    assert layer.get_capacity("other") == 1500
