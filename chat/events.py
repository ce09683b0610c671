"""Group names and broadcasting: one place that knows how frames reach sockets."""

from __future__ import annotations

import json
import uuid
from typing import Any

from channels.layers import get_channel_layer

from .models import Message


def conversation_group(conversation_uuid: uuid.UUID | str) -> str:
    """Every socket of a conversation joins this group."""
    return f"chat.{conversation_uuid}"


def turn_control_group(conversation_uuid: uuid.UUID | str) -> str:
    """The task running a conversation's turn listens here (for turn.cancel)."""
    return f"turnctl.{conversation_uuid}"


def message_dict(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(message.uuid),
        "role": message.role,
        "agent": {"slug": message.agent_slug, "name": message.agent_name}
        if message.agent_slug
        else None,
        "text": message.text,
        "created": message.created_at.isoformat().replace("+00:00", "Z"),
    }
    if message.role == "user":
        data["client_id"] = message.client_id
    return data


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


async def broadcast(conversation_uuid: uuid.UUID | str, frame: dict[str, Any]) -> None:
    """Send one frame to every socket of the conversation (serialised once)."""
    await get_channel_layer().group_send(
        conversation_group(conversation_uuid), {"type": "chat.frame", "text": encode(frame)}
    )
