"""Frames the channel layer dropped, made impossible to miss.

channels_redis drops a group message for a channel whose Redis key is full and says
so at INFO ("N of M channels over capacity in group G"): every socket of a process
shares one such key, so under load the streams filled it and sockets were left
mid-reply without a warning. `OverCapacityFilter` sits on the `channels_redis` logger
(superorch_site.settings.base.logging_config): it counts each drop in
`superorch_channel_layer_drops_total` (orchestrator.metrics) and re-logs the line at
WARNING; the layer's other INFO lines stay below the root level as before. Clients
recover from a drop by themselves (turn frames carry `seq`: docs/protocol.md).

Imported by the logging configuration, before Django's apps are ready: the metric is
imported when the first drop is seen.
"""

from __future__ import annotations

import logging
import re

OVER_CAPACITY = re.compile(r"over capacity in group")


class OverCapacityFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if OVER_CAPACITY.search(record.getMessage()):
            # Once per line, even if logging was configured twice (a filter per config).
            if not getattr(record, "superorch_counted", False):
                record.superorch_counted = True
                record_drop(_count(record))
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        return record.levelno >= logging.WARNING


def _count(record: logging.LogRecord) -> int:
    """How many channels missed the message (the log line's first number)."""
    args = record.args if isinstance(record.args, tuple) else ()
    return args[0] if args and isinstance(args[0], int) else 1


def record_drop(channels: int) -> None:
    from orchestrator import metrics

    metrics.CHANNEL_LAYER_DROPS.inc(channels)
