"""A file the user sent with the message a turn answers (docs/attachments.md): plain data
the chat app hands in with the turn. Which models see its bytes is the SDK layer's to
decide (orchestrator.sdk.inputs): images go to OpenAI models as `input_image`; every model,
the local offline one too, reads a note in words that a file came."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# Every note starts so: the local offline model finds the notes by it.
NOTE_PREFIX = "[The user attached "
IMAGE_KINDS = frozenset({"png", "jpeg", "gif", "webp"})


@dataclass(frozen=True)
class TurnAttachment:
    name: str  # already made safe by the chat app
    kind: str  # png, jpeg, gif, webp or pdf
    content_type: str
    size: int  # bytes
    read: Callable[[], bytes] = field(compare=False, repr=False)  # blocking: off the loop

    @property
    def is_image(self) -> bool:
        return self.kind in IMAGE_KINDS


def _size(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{max(1, size // 1024)} KB"


def attachment_note(attachment: TurnAttachment) -> str:
    what = "an image" if attachment.is_image else "a PDF document"
    return f"{NOTE_PREFIX}{what}: {attachment.name}, {_size(attachment.size)}]"


def note_name(text: str) -> str | None:
    """The file's name in a note, or None for text that is not a note."""
    if not text.startswith(NOTE_PREFIX) or ": " not in text:
        return None
    return text.split(": ", 1)[1].rsplit(", ", 1)[0]
