"""Group events that only relay a frame to the socket skip channels' database hop.

Channels (4.2 and later) awaits `close_old_connections` in the sync thread before every
handler it dispatches (`AsyncConsumer.dispatch`): a thread hop, queued behind every
database call of the process, for each frame a socket relays, so each `message.delta` of
every stream cost the event loop a hop and waited its turn in the one sync thread (with
50 replies streaming, about 1,000 hops a second; `python -m bench people`). The relay
handlers touch no database, so for them it is skipped; every other message (connect,
the socket's own frames, disconnect) is dispatched as channels does. The database calls
themselves (`database_sync_to_async`) still close old connections around each call.
"""

from __future__ import annotations

from typing import Any, ClassVar

from channels.consumer import get_handler_name


class RelayDispatch:
    """Mixed in before channels' consumer class; `relay_events`: the group event types
    whose handlers only send to the socket."""

    relay_events: ClassVar[frozenset[str]] = frozenset()

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") in self.relay_events:
            await getattr(self, get_handler_name(message))(message)
            return
        await super().dispatch(message)  # type: ignore[misc]
