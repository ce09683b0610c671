"""The model's input with the files of the message a turn answers (docs/attachments.md):
images as input_image for models that take them, a note in words for every model, and
the offline model's acknowledgement."""

from __future__ import annotations

import base64
import uuid

import pytest

from orchestrator import runtime
from orchestrator.domain.attachments import TurnAttachment, attachment_note, note_name
from orchestrator.sdk.inputs import accepts_images, model_input

IMAGE = b"\x89PNG-not-really"


def request(*files: TurnAttachment, text: str = "What is this?") -> runtime.TurnRequest:
    return runtime.TurnRequest(
        conversation_id=uuid.uuid4(),
        turn_id=uuid.uuid4(),
        history=[
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Hi!", "agent": "triage"},
            {"role": "user", "content": text},
        ],
        attachments=list(files),
    )


def png(read=lambda: IMAGE) -> TurnAttachment:
    return TurnAttachment(
        name="shot.png", kind="png", content_type="image/png", size=2048, read=read
    )


PDF = TurnAttachment(
    name="bill.pdf", kind="pdf", content_type="application/pdf", size=3 << 20, read=bytes
)


def test_only_the_offline_model_takes_no_images():
    assert not accepts_images("local")
    assert accepts_images("openai") and accepts_images("openai_compatible")


def test_notes_name_the_file_and_are_found_again():
    assert attachment_note(png()) == "[The user attached an image: shot.png, 2 KB]"
    assert attachment_note(PDF) == "[The user attached a PDF document: bill.pdf, 3.0 MB]"
    assert note_name(attachment_note(PDF)) == "bill.pdf"
    assert note_name("[The user wrote this]") is None and note_name("shot.png") is None


async def test_a_model_that_takes_images_gets_the_image_and_the_note():
    items = await model_input(request(png(), PDF), images=True)
    assert items[:2] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hi!"},
    ]
    assert items[2] == {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_text", "text": attachment_note(png())},
            {
                "type": "input_image",
                "image_url": "data:image/png;base64," + base64.b64encode(IMAGE).decode(),
                "detail": "auto",
            },
            {"type": "input_text", "text": attachment_note(PDF)},  # a PDF is named, not sent
        ],
    }


async def test_the_offline_model_gets_the_notes_only_and_no_bytes_are_read():
    def never():
        raise AssertionError("the file was read for a model that cannot see it")

    items = await model_input(request(png(read=never), text=""), images=False)
    assert items[-1]["content"] == [{"type": "input_text", "text": attachment_note(png())}]


async def test_a_file_gone_from_storage_is_still_named():
    def gone():
        raise FileNotFoundError("erased meanwhile")

    items = await model_input(request(png(read=gone)), images=True)
    assert [p["type"] for p in items[-1]["content"]] == ["input_text", "input_text"]


async def test_without_files_the_input_is_the_history():
    items = await model_input(request(), images=True)
    assert items[-1] == {"role": "user", "content": "What is this?"}


# --- The offline model --------------------------------------------------------------------


async def answer(req: runtime.TurnRequest) -> tuple[runtime.TurnOutcome, str]:
    events = []

    async def emit(event):
        events.append(event)

    outcome = await runtime.run_turn(req, emit)
    return outcome, "".join(e.text for e in events if isinstance(e, runtime.MessageDone))


@pytest.mark.django_db(transaction=True)
async def test_the_offline_model_acknowledges_a_file_alone(team):
    outcome, reply = await answer(request(png(), text=""))
    assert outcome.status == "ok"
    assert reply.startswith("Thank you, I've received your file **shot.png**.")
    assert "a person from our team can look at it" in reply


@pytest.mark.django_db(transaction=True)
async def test_the_offline_model_answers_the_words_and_says_the_file_came(team):
    outcome, reply = await answer(request(PDF, text="I was charged twice for my subscription"))
    assert outcome.status == "ok" and outcome.final_agent.slug == "billing"
    assert reply.startswith("I've received your file **bill.pdf**; a person from our team")
    assert "charged twice" in reply.lower()


@pytest.mark.django_db(transaction=True)
async def test_a_file_without_words_is_never_declined_as_off_topic(team):
    rule = runtime.OffTopicRule.for_site(
        decline=True, reply="Only shop questions.", site_name="Shop"
    )
    declined = request(text="What is the capital of Peru?")
    declined.off_topic = rule
    outcome, reply = await answer(declined)
    assert outcome.status == "blocked" and reply == "Only shop questions."  # the rule works
    alone = request(png(), text="")
    alone.off_topic = rule
    outcome, reply = await answer(alone)
    assert outcome.status == "ok" and "received your file" in reply
