"""Attachments over HTTP (docs/attachments.md): the upload, with the conversation's token
in a header (never through the WebSocket), and the download, for the conversation's user
or for staff. Thin: chat.attachments checks and stores; these adapt HTTP, and answer a
refusal with its status and plain words as JSON ({"code", "message"})."""

from __future__ import annotations

import contextvars
import uuid

from asgiref.sync import sync_to_async
from django.core.exceptions import SuspiciousOperation
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from . import attachments, audit, clients, protocol, turns
from .attachments import AttachmentRefused
from .models import Conversation


def _refused(exc: AttachmentRefused) -> JsonResponse:
    response = JsonResponse({"code": exc.code, "message": exc.message}, status=exc.status)
    if exc.status == 429:
        response.headers["Retry-After"] = "60"
    return response


def _declared_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


# Token-authenticated, not cookie-authenticated: no CSRF token to check, but the Origin is
# (chat.attachments.conversation_for_upload), as the chat socket's handshake does.
@csrf_exempt
@require_POST
async def upload(request: HttpRequest) -> HttpResponse:
    """One file (`file`), with an optional message id (`id`, as message.send's) and words
    (`text`). Then the agents answer it, as the socket does after a message.send."""
    response, conversation = await sync_to_async(_upload)(request)
    if conversation is not None:
        # In a context of its own: the request's (Django's per-request thread-sensitive
        # executor) ends with the response, and the turn's database calls with it.
        client = clients.client_address(getattr(request, "scope", {}))
        contextvars.Context().run(turns.schedule, conversation, client=client)
    return response


def _files(request: HttpRequest) -> list:
    """The body's files; a body Django cannot parse (not multipart, cut short, too many
    parts) is a plain refusal, not an HTML error page."""
    try:
        return request.FILES.getlist("file") if len(request.FILES) <= 1 else [None, None]
    except (MultiPartParserError, SuspiciousOperation):
        raise AttachmentRefused(
            400, protocol.ErrorCode.BAD_FRAME.value, attachments.UNREADABLE
        ) from None


def _upload(request: HttpRequest) -> tuple[HttpResponse, Conversation | None]:
    try:
        conversation = attachments.conversation_for_upload(
            token=attachments.token_from_headers(request.headers),
            origin=request.headers.get("Origin"),
        )
        attachments.check_declared_length(
            conversation=conversation, length=_declared_length(request)
        )
        attachments.check_rate(conversation=conversation)
        files = _files(request)
        if not files:
            raise AttachmentRefused(400, protocol.ErrorCode.BAD_FRAME.value, attachments.NO_FILE)
        if len(files) > 1:
            raise AttachmentRefused(400, protocol.ErrorCode.BAD_FRAME.value, attachments.ONE_FILE)
        client_id, text = attachments.clean_fields(
            client_id=request.POST.get("id", ""), text=request.POST.get("text", "")
        )
        checked = attachments.file_check(conversation=conversation, upload=files[0])
        message, created = attachments.attachment_receive(
            conversation=conversation, checked=checked, client_id=client_id, text=text
        )
    except AttachmentRefused as exc:
        return _refused(exc), None
    payload = protocol.MessagePayload.from_message(message)
    response = JsonResponse(
        {"id": client_id, "message": payload.model_dump(mode="json")},
        status=201 if created else 200,
    )
    return response, conversation if created else None


@require_safe
def download(request: HttpRequest, key: uuid.UUID) -> HttpResponse:
    """The file as stored, with its stored content type, never sniffed (nosniff) and
    never run as a page (a sandboxing CSP): images inline, PDFs as a download."""
    try:
        attachment, by_staff = attachments.attachment_for_download(
            key=key,
            link_key=request.GET.get("key", ""),
            token=attachments.token_from_headers(request.headers),
            user=request.user,
        )
    except AttachmentRefused as exc:
        return _refused(exc)
    if by_staff:
        audit.staff_did(
            staff=request.user,
            action=audit.Action.READ,
            conversation_id=attachment.conversation.uuid,
            attachment=str(attachment.uuid),
        )
    response = FileResponse(attachment.file.open("rb"), content_type=attachment.content_type)
    response.headers["Content-Disposition"] = content_disposition_header(
        as_attachment=not attachment.is_image, filename=attachment.name
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
