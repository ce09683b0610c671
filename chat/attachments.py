"""Attachments (docs/attachments.md): a user's image or PDF, uploaded over HTTP with the
conversation's token, checked by its content, stored through Django's storage API, and
from then on a user message of the conversation like any other (answered by the agents,
shown to staff, exported and erased with the conversation).

The views (chat.attachment_views) only adapt HTTP: every refusal here is an
`AttachmentRefused` with the HTTP status and plain words to answer with.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from . import protocol, roles, services
from .broadcast import broadcast_on_commit
from .filetypes import MAX_PIXELS_SIDE, FileType, ImageTooLarge, NotRecognised, detect, safe_name
from .models import Attachment, Conversation, Message, MessageStatus, Role, attachment_key
from .origins import origin_allowed
from .ratelimit import allow_attachment

logger = logging.getLogger(__name__)

# Plain words for each refusal (shown by the chat as they are).
NOT_AVAILABLE = "This conversation is not available. Please reload the chat and try again."
NOT_HERE = "Files cannot be sent to this chat from this page."
TURNED_OFF = "This chat does not accept files."
NO_FILE = "Choose a file to send."
ONE_FILE = "Send one file at a time."
UNREADABLE = "That upload could not be read. Please choose the file again."
TOO_FAST = "You are sending files too quickly. Please wait a few minutes and try again."
TOO_LARGE = "That file is too large: the limit is {mb} MB."
TOO_MANY_PIXELS = "That image is too large: at most {side} by {side} pixels."
WRONG_TYPE = "We can only accept {kinds} files. That file is none of them."
CAPTION_TOO_LONG = "The message with the file is too long (at most {chars} characters)."
BAD_ID = "The message id is not valid."
BAD_TEXT = "The message with the file holds text that is not valid Unicode."
# Room for the multipart envelope and the caption around the file itself.
ENVELOPE_BYTES = 64 * 1024


class AttachmentRefused(Exception):
    """An upload or download refused: `status` for HTTP, `code` (the protocol's error
    codes, plus `unsupported_type`) and `message` in plain words."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _refuse_unavailable() -> AttachmentRefused:
    return AttachmentRefused(403, protocol.ErrorCode.FORBIDDEN.value, NOT_AVAILABLE)


def _kinds(types: list[FileType]) -> str:
    labels = [t.label for t in types]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " or " + labels[-1]


# --- Who may upload --------------------------------------------------------------------


def token_from_headers(headers: Any) -> str:
    """The conversation token from `Authorization: Bearer <token>` or
    `X-Conversation-Token` (never from the URL or the form: it would end up in logs)."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("X-Conversation-Token", "").strip()


def conversation_for_upload(*, token: str, origin: str | None) -> Conversation:
    """The conversation the token belongs to, if the request comes from one of this app's
    origins or the conversation's site's (as the chat socket checks), and its site is
    enabled and takes files. A missing or unknown token, or a foreign page, says nothing
    about whether the conversation exists."""
    if not token or len(token) > protocol.Limits.TOKEN_CHARS:
        raise _refuse_unavailable()
    conversation = (
        Conversation.objects.select_related("site")
        .filter(token_hash=services.token_hash(token))
        .first()
    )
    if conversation is None or not conversation.site.enabled:
        raise _refuse_unavailable()
    allowed = [*settings.SUPERORCH_APP_ORIGINS, *conversation.site.origin_list]
    if not origin or not origin_allowed(origin, allowed):
        raise AttachmentRefused(403, protocol.ErrorCode.FORBIDDEN.value, NOT_HERE)
    if not conversation.site.attachment_type_list:
        raise AttachmentRefused(403, protocol.ErrorCode.FORBIDDEN.value, TURNED_OFF)
    return conversation


def check_declared_length(*, conversation: Conversation, length: int | None) -> None:
    """Refuse a body that says it is too large before it is parsed."""
    limit = conversation.site.attachment_max_bytes
    if length is not None and length > limit + ENVELOPE_BYTES:
        raise AttachmentRefused(
            413,
            protocol.ErrorCode.TOO_LARGE.value,
            TOO_LARGE.format(mb=conversation.site.attachment_max_mb),
        )


def check_rate(*, conversation: Conversation) -> None:
    if not allow_attachment(str(conversation.uuid), rate=settings.SUPERORCH_ATTACHMENT_RATE):
        raise AttachmentRefused(429, protocol.ErrorCode.RATE_LIMITED.value, TOO_FAST)


# --- The upload ------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    data: bytes
    type: FileType
    name: str
    width: int | None
    height: int | None


def file_check(*, conversation: Conversation, upload: UploadedFile) -> Checked:
    """The file's size against the site's limit and its bytes against the kinds the site
    takes: what the file is, never what its name or Content-Type says."""
    site = conversation.site
    if upload.size is None or upload.size > site.attachment_max_bytes:
        raise AttachmentRefused(
            413, protocol.ErrorCode.TOO_LARGE.value, TOO_LARGE.format(mb=site.attachment_max_mb)
        )
    data = upload.read(site.attachment_max_bytes + 1)
    if len(data) > site.attachment_max_bytes:
        raise AttachmentRefused(
            413, protocol.ErrorCode.TOO_LARGE.value, TOO_LARGE.format(mb=site.attachment_max_mb)
        )
    allowed = site.attachment_type_list
    wrong = AttachmentRefused(415, "unsupported_type", WRONG_TYPE.format(kinds=_kinds(allowed)))
    try:
        found = detect(data)
    except ImageTooLarge:
        raise AttachmentRefused(
            413, protocol.ErrorCode.TOO_LARGE.value, TOO_MANY_PIXELS.format(side=MAX_PIXELS_SIDE)
        ) from None
    except NotRecognised:
        raise wrong from None
    if found.type not in allowed:
        raise wrong
    return Checked(
        data, found.type, safe_name(upload.name or "", found.type), found.width, found.height
    )


def clean_fields(*, client_id: str, text: str) -> tuple[str, str]:
    """The message id (optional, as in message.send) and the words sent with the file."""
    client_id = client_id.strip()
    if len(client_id) > protocol.Limits.CLIENT_ID_CHARS or not protocol.valid_text(client_id):
        raise AttachmentRefused(400, protocol.ErrorCode.BAD_FRAME.value, BAD_ID)
    chars = settings.SUPERORCH_MAX_MESSAGE_CHARS
    if len(text) > chars:
        raise AttachmentRefused(
            413, protocol.ErrorCode.TOO_LARGE.value, CAPTION_TOO_LONG.format(chars=chars)
        )
    if not protocol.valid_text(text):
        raise AttachmentRefused(400, protocol.ErrorCode.BAD_FRAME.value, BAD_TEXT)
    return client_id or f"upload-{uuid.uuid4().hex}", text.strip()


def attachment_receive(
    *, conversation: Conversation, checked: Checked, client_id: str, text: str
) -> tuple[Message, bool]:
    """Store the file and its user message once per client id (a retried upload is the
    same message); every socket of the conversation and the staff inbox hear of it once
    committed (`message.ack` with the message's `attachment`); the caller schedules the
    turn that answers it (as the socket does). Returns (message, created)."""
    existing = (
        Message.objects.select_related("attachment")
        .filter(conversation=conversation, client_id=client_id)
        .first()
    )
    if existing is not None:
        return existing, False
    text = services.user_text(conversation=conversation, text=text)  # a caption is masked too
    stored: Attachment | None = None
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                role=Role.USER,
                text=text,
                client_id=client_id,
                status=MessageStatus.PENDING,
            )
            stored = Attachment(
                conversation=conversation,
                message=message,
                name=checked.name,
                kind=checked.type.value,
                content_type=checked.type.content_type,
                size=len(checked.data),
                width=checked.width,
                height=checked.height,
                sha256=hashlib.sha256(checked.data).hexdigest(),
            )
            stored.file.save(checked.name, ContentFile(checked.data), save=False)
            stored.save()
    except IntegrityError:  # the same id arrived at the same moment
        _remove_file(stored)
        return Message.objects.select_related("attachment").get(
            conversation=conversation, client_id=client_id
        ), False
    except Exception:
        _remove_file(stored)
        raise
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    services.user_message_stored(conversation=conversation)
    payload = protocol.MessagePayload.from_message(message, attachment=stored)
    broadcast_on_commit(conversation.uuid, protocol.MessageAck(id=client_id, message=payload))
    return message, True


def _remove_file(attachment: Attachment | None) -> None:
    if attachment is not None and attachment.file.name:
        try:
            attachment.file.storage.delete(attachment.file.name)
        except Exception:
            logger.exception("could not remove the file of a refused attachment")


@receiver(post_delete, sender=Attachment)
def _file_goes_with_the_row(sender, instance: Attachment, **kwargs) -> None:
    """However the row goes (retention, erasure, the admin, a conversation deleted), its
    file leaves storage once the deletion commits (not before: a rollback keeps both)."""
    name, storage = instance.file.name, instance.file.storage
    if name:
        transaction.on_commit(lambda: _delete_stored(storage, name))


def _delete_stored(storage: Any, name: str) -> None:
    try:
        storage.delete(name)
    except Exception:  # the row is gone; a file left behind is logged, never fatal
        logger.exception("could not remove the attachment file %s from storage", name)


# --- Downloads -------------------------------------------------------------------------


def attachment_for_download(
    *, key: uuid.UUID, link_key: str, token: str, user: Any
) -> tuple[Attachment, bool]:
    """The attachment, for its conversation's user (the link's key, or the token in a
    header) or for staff who may read conversations. Returns (attachment, by_staff).
    Anyone else, like an unknown id, gets the same refusal (404: nothing said)."""
    attachment = Attachment.objects.select_related("conversation").filter(uuid=key).first()
    missing = AttachmentRefused(
        404, protocol.ErrorCode.NOT_FOUND.value, "That file could not be found."
    )
    if attachment is None:
        raise missing
    if link_key and hmac.compare_digest(
        link_key.encode(), attachment_key(attachment.uuid).encode()
    ):
        return attachment, False
    if token and hmac.compare_digest(
        services.token_hash(token).encode(), attachment.conversation.token_hash.encode()
    ):
        return attachment, False
    if roles.can(user, roles.Can.READ):
        return attachment, True
    raise missing
