"""Attachments (docs/attachments.md): checked by content, limited per site, uploaded over
HTTP with the conversation's token from an allowed origin, part of the conversation
(frames, the inbox, the admin), downloaded only by the conversation's user and staff."""

from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient, Client

from chat import filetypes, services, turns
from chat.filetypes import FileType, safe_name
from chat.models import Attachment, Message, Site, StaffAuditEntry

URL = "/api/conversations/attachments/"
ORIGIN = "http://testserver"


# --- Files -----------------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int = 2, height: int = 1) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress((b"\x00" + b"\xff\x00\x00" * width) * height)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", pixels)
        + _chunk(b"IEND", b"")
    )


def jpeg(width: int = 3, height: int = 2) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\x12\x34\xff\xd9"


GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def webp(width: int = 4, height: int = 5) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    body = b"\x2f" + bits.to_bytes(4, "little") + b"\x00" * 5
    chunk = b"VP8L" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


# --- Content checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind", "size"),
    [
        (png(2, 1), FileType.PNG, (2, 1)),
        (jpeg(3, 2), FileType.JPEG, (3, 2)),
        (GIF, FileType.GIF, (1, 1)),
        (webp(4, 5), FileType.WEBP, (4, 5)),
        (PDF, FileType.PDF, (None, None)),
    ],
)
def test_real_files_are_recognised_with_their_size(data, kind, size):
    found = filetypes.detect(data)
    assert found.type == kind and (found.width, found.height) == size


@pytest.mark.parametrize(
    "data",
    [
        HTML,
        b"\x89PNG\r\n\x1a\n" + HTML,  # a PNG signature, then a page
        png() + HTML,  # a real PNG with a page after its end
        png()[:-3],  # cut short
        png()[:20] + b"X" + png()[21:],  # a chunk's CRC no longer matches
        b"\xff\xd8\xff" + HTML,  # a JPEG signature without a JPEG
        b"GIF89a" + HTML,
        b"RIFF\x00\x00\x00\x00WEBP" + HTML,
        b"%PDF-1.4\n" + HTML,  # no %%EOF
        b"",
    ],
)
def test_what_only_looks_like_an_image_or_a_pdf_is_refused(data):
    with pytest.raises(filetypes.NotRecognised):
        filetypes.detect(data)


def test_an_image_of_too_many_pixels_is_refused():
    with pytest.raises(filetypes.ImageTooLarge):
        filetypes.detect(png(filetypes.MAX_PIXELS_SIDE + 1, 1))


@pytest.mark.parametrize(
    ("raw", "kind", "safe"),
    [
        ("holiday photo.png", FileType.PNG, "holiday photo.png"),
        ("../../etc/passwd", FileType.PDF, "passwd.pdf"),
        ("C:\\Users\\me\\scan.PDF", FileType.PDF, "scan.pdf"),
        ('"><img src=x onerror=alert(1)>.png', FileType.PNG, "img src=x onerror=alert(1).png"),
        ("invoice.pdf.exe", FileType.PDF, "invoice.pdf.pdf"),
        ("report\u202egnp.exe", FileType.PNG, "reportgnp.png"),  # no right-to-left override
        ("", FileType.JPEG, "attachment.jpg"),
        ("...", FileType.GIF, "attachment.gif"),
        ("x" * 300 + ".webp", FileType.WEBP, "x" * 95 + ".webp"),
    ],
)
def test_names_are_made_safe_and_carry_the_real_extension(raw, kind, safe):
    assert safe_name(raw, kind) == safe


# --- Fixtures ----------------------------------------------------------------------------


@pytest.fixture
def media(settings, tmp_path, monkeypatch) -> Path:
    """Files in a directory of the test's own; and no turn runs for the sync tests' uploads
    (the test client's event loop ends with each request; the async tests run turns)."""
    settings.MEDIA_ROOT = str(tmp_path)
    monkeypatch.setattr(turns, "schedule", lambda *args, **kwargs: None)
    return tmp_path


@pytest.fixture
def site(db) -> Site:
    return Site.objects.create(key="shop", name="Shop", allowed_origins="https://shop.example")


@pytest.fixture
def chat(site):
    conversation, token, _ = services.conversation_open(site=site, token=None, user={}, context={})
    return conversation, token


def post(token: str | None, data: bytes, name: str = "file.png", *, origin=ORIGIN, **fields):
    headers = {"Origin": origin} if origin else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    form = {"file": SimpleUploadedFile(name, data, content_type="image/png"), **fields}
    return Client().post(URL, form, headers=headers)


def stored_files(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()]


# --- The upload ---------------------------------------------------------------------------


pytestmark = pytest.mark.django_db


def test_a_real_png_is_stored_as_a_user_message(media, chat):
    conversation, token = chat
    response = post(token, png(), "My screen.png", id="c-1", text="  it looks like this ")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == "c-1"
    message = Message.objects.get(uuid=body["message"]["id"])
    assert (
        message.role == "user"
        and message.status == "pending"
        and message.text == "it looks like this"
    )
    attachment = message.attachment
    assert (attachment.kind, attachment.content_type, attachment.width) == ("png", "image/png", 2)
    assert attachment.name == "My screen.png" and attachment.conversation == conversation
    # Stored under ids only, never the user's name for it.
    assert attachment.file.name == f"attachments/{conversation.uuid}/{attachment.uuid}.png"
    assert stored_files(media) == [media / attachment.file.name]
    assert (media / attachment.file.name).read_bytes() == png()
    sent = body["message"]["attachment"]
    assert sent["name"] == "My screen.png" and sent["kind"] == "png" and sent["size"] == len(png())
    assert sent["url"] == f"{URL}{attachment.uuid}/?key={attachment.key}"


def test_a_pdf_named_png_is_a_pdf(media, chat):
    _, token = chat
    response = post(token, PDF, "scan.png")
    assert response.status_code == 201
    attachment = Attachment.objects.get()
    assert (attachment.kind, attachment.name) == ("pdf", "scan.pdf")


def test_html_named_png_is_refused_whatever_the_content_type(media, chat):
    _, token = chat
    response = post(token, HTML, "cat.png")
    assert response.status_code == 415
    assert response.json() == {
        "code": "unsupported_type",
        "message": "We can only accept PNG, JPEG, GIF, WebP or PDF files. That file is none of them.",
    }
    assert not Attachment.objects.exists() and not Message.objects.exists()
    assert stored_files(media) == []


def test_a_kind_the_site_does_not_take_is_refused(media, site, chat):
    site.attachment_types = "png jpeg"
    site.save()
    response = post(chat[1], PDF, "scan.pdf")
    assert response.status_code == 415
    assert "PNG or JPEG" in response.json()["message"]


def test_a_site_can_turn_attachments_off(media, site, chat):
    site.attachment_types = ""
    site.save()
    response = post(chat[1], png())
    assert response.status_code == 403
    assert response.json()["message"] == "This chat does not accept files."


def test_a_file_over_the_sites_limit_is_refused_in_plain_words(media, site, chat):
    site.attachment_max_mb = 1
    site.save()
    big = png() + b"\x00" * (1024 * 1024)  # over 1 MB (and not even a valid PNG)
    response = post(chat[1], big)
    assert response.status_code == 413
    assert response.json() == {
        "code": "too_large",
        "message": "That file is too large: the limit is 1 MB.",
    }
    assert stored_files(media) == []


def test_a_declared_body_too_large_is_refused_before_it_is_read(media, chat):
    response = Client().post(
        URL,
        b"x",
        content_type="multipart/form-data; boundary=x",
        headers={"Origin": ORIGIN, "Authorization": f"Bearer {chat[1]}"},
        CONTENT_LENGTH=str(50 * 1024 * 1024),
    )
    assert response.status_code == 413


def test_an_image_of_too_many_pixels_is_413(media, chat):
    response = post(chat[1], png(20000, 1))
    assert response.status_code == 413 and "pixels" in response.json()["message"]


@pytest.mark.parametrize("token", [None, "", "not-a-token", "x" * 500])
def test_without_the_conversations_token_nothing_is_said(media, chat, token):
    response = post(token, png())
    assert response.status_code == 403
    assert response.json()["message"] == (
        "This conversation is not available. Please reload the chat and try again."
    )
    assert not Message.objects.exists()


def test_the_token_header_may_be_x_conversation_token(media, chat):
    form = {"file": SimpleUploadedFile("a.gif", GIF)}
    headers = {"Origin": ORIGIN, "X-Conversation-Token": chat[1]}
    assert Client().post(URL, form, headers=headers).status_code == 201


def test_a_disabled_sites_conversation_takes_no_file(media, site, chat):
    site.enabled = False
    site.save()
    assert post(chat[1], png()).status_code == 403


@pytest.mark.parametrize("origin", [None, "https://evil.example", "http://testserver.evil.example"])
def test_a_foreign_or_missing_origin_is_refused(media, chat, origin):
    response = post(chat[1], png(), origin=origin)
    assert response.status_code == 403
    assert response.json()["message"] == "Files cannot be sent to this chat from this page."
    assert not Message.objects.exists()


def test_the_sites_own_origin_may_upload(media, chat):
    assert post(chat[1], png(), origin="https://shop.example").status_code == 201


def test_one_file_at_a_time_and_a_file_at_all(media, chat):
    headers = {"Origin": ORIGIN, "Authorization": f"Bearer {chat[1]}"}
    two = {"file": [SimpleUploadedFile("a.png", png()), SimpleUploadedFile("b.png", png())]}
    assert Client().post(URL, two, headers=headers).status_code == 400
    none = Client().post(URL, {"text": "hi"}, headers=headers)
    assert none.status_code == 400 and none.json()["message"] == "Choose a file to send."


def test_get_is_not_an_upload(chat):
    assert Client().get(URL).status_code == 405


def test_the_same_message_id_twice_is_one_message(media, chat):
    first = post(chat[1], png(), id="c-9")
    again = post(chat[1], png(), id="c-9")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["message"]["id"] == again.json()["message"]["id"]
    assert Attachment.objects.count() == 1 and len(stored_files(media)) == 1


def test_uploads_are_rate_limited_per_conversation(media, settings, site, chat):
    settings.SUPERORCH_ATTACHMENT_RATE = "2/minute"
    _, token = chat
    assert [post(token, png()).status_code for _ in range(2)] == [201, 201]
    refused = post(token, png())
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert "too quickly" in refused.json()["message"]
    # Another conversation has its own allowance.
    _, other = services.conversation_open(site=site, token=None, user={}, context={})[:2]
    assert post(other, png()).status_code == 201


# --- Downloads ---------------------------------------------------------------------------


@pytest.fixture
def uploaded(media, chat) -> Attachment:
    assert post(chat[1], png(), "shot.png").status_code == 201
    assert post(chat[1], PDF, "bill.pdf").status_code == 201
    return Attachment.objects.get(kind="png")


def staff_client(role: str | None = None, *, superuser: bool = False) -> Client:
    users = get_user_model().objects
    make = users.create_superuser if superuser else users.create_user
    user = make(f"staff-{role or 'super'}", password="x", is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def test_the_user_downloads_with_the_links_key_or_the_token(uploaded, chat):
    response = Client().get(uploaded.user_url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == png()
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("inline")
    assert "sandbox" in response["Content-Security-Policy"]
    by_token = Client().get(uploaded.staff_url, headers={"Authorization": f"Bearer {chat[1]}"})
    assert by_token.status_code == 200


def test_a_pdf_is_always_a_download(uploaded):
    pdf = Attachment.objects.get(kind="pdf")
    response = Client().get(pdf.user_url)
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="bill.pdf"'


@pytest.mark.parametrize(
    "how",
    ["nothing", "wrong key", "another conversations key", "another token", "not staff"],
)
def test_anyone_else_gets_a_404_that_says_nothing(uploaded, site, how):
    other, other_token, _ = services.conversation_open(site=site, token=None, user={}, context={})
    client, url, headers = Client(), uploaded.staff_url, {}
    if how == "wrong key":
        url += "?key=" + "0" * 64
    elif how == "another conversations key":
        url += "?key=" + Attachment(uuid=other.uuid).key
    elif how == "another token":
        headers = {"Authorization": f"Bearer {other_token}"}
    elif how == "not staff":
        user = get_user_model().objects.create_user("customer", password="x")
        client.force_login(user)
    response = client.get(url, headers=headers)
    assert response.status_code == 404
    assert response.json()["message"] == "That file could not be found."


def test_an_unknown_attachment_is_the_same_404(db):
    response = Client().get(f"{URL}00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404


@pytest.mark.parametrize("role", ["Viewer", "Support", "Supervisor", "Admin"])
def test_staff_of_every_role_may_view_and_it_is_audited(uploaded, role):
    response = staff_client(role).get(uploaded.staff_url)
    assert response.status_code == 200
    entry = StaffAuditEntry.objects.get(action="read")
    assert entry.detail == {"attachment": str(uploaded.uuid)}
    assert entry.conversation_id == uploaded.conversation.uuid


def test_the_inbox_and_the_admin_show_the_attachment(uploaded):
    client = staff_client(superuser=True)
    key = uploaded.conversation.uuid
    inbox = client.get(f"/staff/c/{key}/").content.decode()
    assert f'src="{uploaded.staff_url}"' in inbox and "shot.png" in inbox and "bill.pdf" in inbox
    admin = client.get(f"/admin/chat/conversation/{uploaded.conversation.pk}/change/")
    assert f'src="{uploaded.staff_url}"' in admin.content.decode()
    assert "?key=" not in inbox  # staff links carry no key: the role is checked


# --- Part of the conversation ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_socket_hears_of_it_and_the_offline_model_acknowledges(
    team, connect, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)
    comm = await connect()
    await comm.send_json_to({"type": "session.start", "site": "demo"})
    ready = await comm.receive_json_from(timeout=5)
    response = await AsyncClient().post(
        URL,
        {"file": SimpleUploadedFile("receipt.jpg", jpeg()), "id": "up-1"},
        headers={"Origin": ORIGIN, "Authorization": f"Bearer {ready['token']}"},
    )
    assert response.status_code == 201
    frames = []
    while not frames or frames[-1]["type"] != "turn.done":
        frames.append(await comm.receive_json_from(timeout=10))
    ack = frames[0]
    assert ack["type"] == "message.ack" and ack["id"] == "up-1"
    assert ack["message"]["attachment"]["name"] == "receipt.jpg"
    assert ack["message"]["attachment"]["kind"] == "jpeg"
    done = next(f for f in frames if f["type"] == "message.done")
    assert "received your file **receipt.jpg**" in done["message"]["text"]
    assert "a person from our team can look at it" in done["message"]["text"]
    assert frames[-1]["status"] == "ok"  # not declined as off-topic for having no words
    await turns.wait_idle(timeout=10)
    # A reconnect's history carries the attachment too.
    comm2 = await connect()
    await comm2.send_json_to({"type": "session.start", "site": "demo", "token": ready["token"]})
    again = await comm2.receive_json_from(timeout=5)
    first = again["messages"][0]
    assert first["attachment"]["url"].startswith(URL) and "client_id" in first
    assert "attachment" not in again["messages"][1]  # the reply has none


@pytest.mark.django_db(transaction=True)
async def test_an_openai_agent_gets_the_image_itself(team, settings, tmp_path, openai_server):
    """A model that takes images (here an OpenAI-compatible server) gets the image as an
    image part of the user's message, besides the note naming it."""
    from tests.support.openai_server import Step

    settings.MEDIA_ROOT = str(tmp_path)
    settings.OPENAI_BASE_URL = openai_server.base_url
    settings.OPENAI_API_KEY = "test-key"
    settings.SUPERORCH_DEFAULT_MODEL = "test-model"
    openai_server.responder = lambda body: Step(text="I can see a red square.")
    site = await sync_to_async(services.site_ensure_default)()
    conversation, token, _ = await sync_to_async(services.conversation_open)(
        site=site, token=None, user={}, context={}
    )
    response = await AsyncClient().post(
        URL,
        {"file": SimpleUploadedFile("red.png", png()), "text": "What is wrong here?"},
        headers={"Origin": ORIGIN, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201
    await asyncio.sleep(0.1)
    await turns.wait_idle(timeout=15)
    import base64

    wanted = "data:image/png;base64," + base64.b64encode(png()).decode()
    user_messages = [
        m for r in openai_server.requests for m in r["messages"] if m["role"] == "user"
    ]
    assert user_messages, "the model was never asked"
    content = user_messages[-1]["content"]
    assert isinstance(content, list)
    texts = [p.get("text") for p in content if p["type"] == "text"]
    images = [p["image_url"]["url"] for p in content if p["type"] == "image_url"]
    assert "What is wrong here?" in texts
    assert any(t.startswith("[The user attached an image: red.png") for t in texts)
    assert images == [wanted]
    reply = await Message.objects.filter(conversation=conversation, role="assistant").afirst()
    assert reply is not None and reply.text == "I can see a red square."


# --- Privacy -----------------------------------------------------------------------------


def test_deleting_the_conversation_removes_the_file_once_committed(
    uploaded, django_capture_on_commit_callbacks, media
):
    assert len(stored_files(media)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        uploaded.conversation.delete()
    assert not Attachment.objects.exists()
    assert stored_files(media) == []


# --- The pages ---------------------------------------------------------------------------------


def test_the_paperclip_shows_only_where_the_site_takes_files(team, site):
    page = Client().get("/").content.decode()
    assert 'data-testid="attach"' in page
    assert 'accept="image/png,image/jpeg,image/gif,image/webp,application/pdf"' in page
    assert f'data-attachment-max-bytes="{5 * 1024 * 1024}"' in page
    site.attachment_types = ""
    site.save()
    frame = Client().get("/widget/shop/").content.decode()
    assert 'data-testid="attach"' not in frame and 'data-attachment-max-bytes="0"' in frame


def test_the_staff_api_transcript_names_the_attachment(uploaded):
    from chat.staff_tokens import staff_token_create

    user = get_user_model().objects.create_user("api", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Viewer"))
    token, _ = staff_token_create(user=user)
    key = uploaded.conversation.uuid
    body = (
        Client()
        .get(f"/api/staff/conversations/{key}/", headers={"Authorization": f"Bearer {token}"})
        .json()
    )
    files = [m["attachment"] for m in body["messages"] if m["attachment"]]
    assert [f["name"] for f in files] == ["shot.png", "bill.pdf"]
    assert files[0]["url"] == uploaded.staff_url and files[0]["width"] == 2


def test_the_inbox_list_previews_a_file_sent_without_words(media, chat):
    from chat import inbox

    conversation, token = chat
    staff = get_user_model().objects.create_user("sam", password="x", is_staff=True)
    assert post(token, png(), "shot.png").status_code == 201
    [row] = [
        r for r in inbox.with_previews(inbox.inbox_rows(staff=staff)) if r.pk == conversation.pk
    ]
    assert row.preview == "📎 shot.png"
    assert post(token, GIF, "b.gif", text="and **this** one").status_code == 201
    [row] = [
        r for r in inbox.with_previews(inbox.inbox_rows(staff=staff)) if r.pk == conversation.pk
    ]
    assert row.preview == "and this one"


@pytest.mark.parametrize(
    "body",
    [
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\nabc',
        b"not multipart",
    ],
)
def test_a_body_that_cannot_be_read_is_a_plain_400(media, chat, body):
    response = Client().post(
        URL,
        body,
        content_type="multipart/form-data; boundary=x",
        headers={"Origin": ORIGIN, "Authorization": f"Bearer {chat[1]}"},
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"


def test_a_files_caption_is_masked_like_any_message(media, site, chat):
    """The upload stores its caption through the same masking as the socket's messages
    (before this, a card number in a caption was stored as sent)."""
    Site.objects.filter(pk=site.pk).update(redact_cards=True)
    conversation, token = chat
    conversation.site.refresh_from_db()
    assert post(token, png(), "card.png", text="my card 4111 1111 1111 1111").status_code == 201
    stored = Message.objects.get(conversation=conversation, role="user")
    assert "4111" not in stored.text and "[card number]" in stored.text
