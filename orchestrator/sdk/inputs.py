"""The model's input for a turn: the conversation's messages, and the files the message
being answered came with (docs/attachments.md).

Every model reads a note in words for each file (`attachment_note`); a model that takes
images (any but the local offline model) also gets each image itself, as an `input_image`
part with the bytes as a data URL (the SDK turns it into Chat Completions' `image_url`
for OpenAI-compatible servers). PDFs are named, not sent: not every server takes files.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from ..domain.attachments import TurnAttachment, attachment_note
from ..domain.enums import ModelProvider
from ..domain.events import TurnRequest

logger = logging.getLogger(__name__)


def accepts_images(provider: ModelProvider | str) -> bool:
    return provider != ModelProvider.LOCAL


async def _image_part(attachment: TurnAttachment) -> dict[str, Any] | None:
    try:
        data = await asyncio.to_thread(attachment.read)
    except Exception:  # the file is gone (erased meanwhile): the note still says it came
        logger.warning("an attachment could not be read for the model", exc_info=True)
        return None
    encoded = base64.b64encode(data).decode("ascii")
    return {
        "type": "input_image",
        "image_url": f"data:{attachment.content_type};base64,{encoded}",
        "detail": "auto",
    }


async def model_input(request: TurnRequest, *, images: bool) -> list[dict[str, Any]]:
    """The run's input items, oldest first; the last user message with its files."""
    items: list[dict[str, Any]] = [
        {"role": m["role"], "content": m["content"]} for m in request.history
    ]
    last_user = next((i for i in range(len(items) - 1, -1, -1) if items[i]["role"] == "user"), None)
    if not request.attachments or last_user is None:
        return items
    text = items[last_user]["content"]
    parts: list[dict[str, Any]] = [{"type": "input_text", "text": text}] if text else []
    for attachment in request.attachments:
        parts.append({"type": "input_text", "text": attachment_note(attachment)})
        if images and attachment.is_image:
            part = await _image_part(attachment)
            if part is not None:
                parts.append(part)
    items[last_user] = {"role": "user", "content": parts}
    return items
