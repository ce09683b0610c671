"""Sites, conversations, messages, turns and feedback."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac

from orchestrator.crypto_fields import BlindIndexField, EncryptedJSONField, EncryptedTextField
from orchestrator.domain.enums import GuardrailName

from .enums import (
    ConversationEventKind,
    ConversationStatus,
    EscalationSource,
    MessageStatus,
    OffTopic,
    Position,
    Role,
    Theme,
    TurnEventKind,
    TurnStatus,
)
from .filetypes import ALL_TYPES, FileType
from .hours import MIDNIGHT, validate_time_zone
from .i18n import language_choices, validate_site_translations
from .origins import parse_origins, validate_origins

MAX_ATTACHMENT_MB = 25


def validate_attachment_types(value: str) -> None:
    known = {t.value for t in ALL_TYPES}
    unknown = [name for name in value.split() if name not in known]
    if unknown:
        raise ValidationError(
            "These are not kinds of file the chat takes: %(bad)s. Use any of: %(known)s.",
            params={"bad": ", ".join(unknown), "known": ", ".join(t.value for t in ALL_TYPES)},
        )


def _attachment_path(instance: Attachment, filename: str) -> str:
    """Where a file is stored: named by ids only, never by what the user called it."""
    return f"attachments/{instance.conversation.uuid}/{instance.uuid}{FileType(instance.kind).extension}"


def _new_site_key() -> str:
    return "site_" + secrets.token_hex(8)


def _new_identity_secret() -> str:
    return secrets.token_hex(32)


class Site(models.Model):
    """A place the chat runs: the app's own page ('demo') or a widget installation."""

    key = models.SlugField(
        max_length=64,
        unique=True,
        default=_new_site_key,
        help_text="Public site key, used in the snippet.",
    )
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    allowed_origins = models.TextField(
        blank=True,
        validators=[validate_origins],
        help_text="Pages that may show the widget: one origin per line, e.g. https://shop.example.com "
        "or https://*.example.com. Empty: the widget frames nowhere but this app itself.",
    )
    identity_secret = models.CharField(
        max_length=128,
        default=_new_identity_secret,
        help_text="Secret for identity verification: your server sends HMAC-SHA256(secret, user id). Keep it private.",
    )
    require_verified = models.BooleanField(
        default=False,
        verbose_name="require verified users",
        help_text="Refuse visitors whose identity is not signed with the identity secret.",
    )
    greeting = models.CharField(max_length=300, default="Hi! How can we help?")
    suggestions = models.JSONField(
        default=list, blank=True, help_text="A list of suggested prompts."
    )
    accent_color = models.CharField(
        max_length=7,
        default="#4f46e5",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a colour like #4f46e5.")],
    )
    theme = models.CharField(max_length=5, choices=Theme.choices(), default=Theme.AUTO.value)
    position = models.CharField(
        max_length=5, choices=Position.choices(), default=Position.RIGHT.value
    )
    language = models.CharField(
        max_length=16,
        blank=True,
        default="",
        choices=language_choices,
        help_text="The chat's language on this site. Empty: each visitor's own (their "
        "browser's), the page's data-locale first.",
    )
    translations = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_site_translations],
        verbose_name="greeting and suggestions in other languages",
        help_text='Per language: {"de": {"greeting": "Hallo! Wie können wir helfen?", '
        '"suggestions": ["Wo ist meine Rechnung?"]}}. A language left out shows the '
        "greeting and suggestions above.",
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="The team's time zone for business hours, e.g. Europe/Berlin.",
    )
    # Off-topic use (docs/guardrails.md): a message no agent's topic fits, other than
    # greetings, thanks and questions about the assistant, is declined before any model runs.
    off_topic = models.CharField(
        max_length=8,
        choices=OffTopic.choices(),
        default=OffTopic.ANSWER.value,
        verbose_name="off-topic messages",
        help_text="Declining saves model calls and keeps the assistant to your topics.",
    )
    off_topic_reply = models.CharField(
        max_length=300,
        blank=True,
        help_text="What a declined message is answered with. Empty: a sentence naming the site.",
    )
    # Privacy (docs/privacy.md): what is masked in a user's messages before they are
    # stored, shown to a model or logged (chat/redaction.py).
    redact_cards = models.BooleanField(
        default=False,
        verbose_name="mask card numbers",
        help_text="Card numbers (13 to 19 digits passing the Luhn check) in users' messages "
        "are stored and sent to the agents as [card number].",
    )
    redact_emails = models.BooleanField(
        default=False,
        verbose_name="mask e-mail addresses",
        help_text="E-mail addresses in users' messages are stored and sent as [email].",
    )
    redact_phones = models.BooleanField(
        default=False,
        verbose_name="mask phone numbers",
        help_text="Phone numbers (9 to 15 digits, with + ( ) - . or spaces) in users' messages "
        "are stored and sent as [phone]. Long order numbers are masked too.",
    )
    # Privacy (docs/privacy.md): conversations idle longer than this are deleted daily.
    retention_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        verbose_name="keep conversations for (days)",
        help_text="Conversations with no activity for this many days (1 to 3650) are deleted, "
        "with everything stored about them, by the daily purge. Empty: kept forever.",
    )

    # Per-site staff (docs/security.md, "Staff roles"): who on the team sees this site's
    # conversations. Empty: every member of staff; Admins see every site.
    staff = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="staffed_sites",
        verbose_name="staff of this site",
        help_text="Only these members of staff (and Admins) see and answer this site's "
        "conversations, in the inbox, the staff API and the admin. Empty: all staff.",
    )

    # Attachments (docs/attachments.md): what users may send, checked by content.
    attachment_types = models.CharField(
        max_length=60,
        blank=True,
        default=" ".join(t.value for t in ALL_TYPES),
        validators=[validate_attachment_types],
        verbose_name="attachments allowed",
        help_text="The kinds of file users may attach, separated by spaces, from: "
        + ", ".join(t.value for t in ALL_TYPES)
        + ". Empty: no attachments.",
    )
    attachment_max_mb = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_ATTACHMENT_MB)],
        verbose_name="largest attachment (MB)",
        help_text=f"From 1 to {MAX_ATTACHMENT_MB} megabytes.",
    )

    def __str__(self) -> str:
        return self.name

    @property
    def origin_list(self) -> list[str]:
        return parse_origins(self.allowed_origins)

    @property
    def attachment_type_list(self) -> list[FileType]:
        """The kinds of file the site takes, in the order of ALL_TYPES (empty: none)."""
        named = set(self.attachment_types.split())
        return [t for t in ALL_TYPES if t.value in named]

    @property
    def attachment_max_bytes(self) -> int:
        return self.attachment_max_mb * 1024 * 1024


class Conversation(models.Model):
    id = models.BigAutoField(primary_key=True)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="conversations")
    # SHA-256 of the secret token; the token itself is only ever held by the client.
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    active_agent = models.CharField(max_length=50, blank=True, help_text="Who answers next.")
    user_id = models.CharField(max_length=200, blank=True)
    user_name = models.CharField(max_length=200, blank=True)
    user_email = models.CharField(max_length=254, blank=True)
    user_verified = models.BooleanField(
        default=False, help_text="The user id was signed with the site's identity secret."
    )
    page_context = EncryptedJSONField(default=dict, blank=True)
    # The language the chat speaks with this user (chat/i18n.py): the offline model's fixed
    # sentences and the status words are in it.
    locale = models.CharField(max_length=16, blank=True, editable=False)
    # A server running this conversation's turns holds the lease until then.
    busy_until = models.DateTimeField(null=True, blank=True, editable=False)
    # People in the loop (chat.people): who answers, and since when.
    status = models.CharField(
        max_length=10,
        choices=ConversationStatus.choices(),
        default=ConversationStatus.BOT.value,
        db_index=True,
        editable=False,
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_conversations",
        editable=False,
    )
    status_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    handback_note = EncryptedTextField(
        blank=True, editable=False, help_text="What staff told the agents when handing back."
    )
    contact_email = models.EmailField(
        blank=True, help_text="Where the user asked to be answered (out of hours)."
    )
    csat_score = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        editable=False,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
    )
    csat_comment = EncryptedTextField(blank=True, editable=False)
    csat_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"Conversation {str(self.uuid)[:8]}"


class Message(models.Model):
    id = models.BigAutoField(primary_key=True)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=10, choices=Role.choices())
    agent_slug = models.CharField(max_length=50, blank=True)
    agent_name = models.CharField(max_length=80, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The member of staff who wrote it (staff messages only).",
    )
    text = EncryptedTextField()
    # Keyed digests of the text's words, for the staff search (chat.search, docs/privacy.md).
    search_index = BlindIndexField(source="text")
    # NULL (not "") for assistant messages, so only user messages meet the unique constraint.
    client_id = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    status = models.CharField(
        max_length=10, choices=MessageStatus.choices(), default=MessageStatus.DONE.value
    )
    turn = models.ForeignKey(
        "Turn", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    # A pending message no model could answer waits until then (and no longer once the
    # user writes again); see chat.turns.
    retry_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"], name="unique_client_id_per_conversation"
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "id"], name="message_conv_id"),
            models.Index(fields=["status", "role"], name="message_status_role"),
            models.Index(fields=["role", "created_at"], name="message_role_created"),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"

    def save(self, *args, **kwargs) -> None:
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "text" in update_fields:
            kwargs["update_fields"] = {*update_fields, "search_index"}  # the index follows
        super().save(*args, **kwargs)


class Turn(models.Model):
    """The work of answering one user message."""

    id = models.BigAutoField(primary_key=True)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    reply_to = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="turns")
    status = models.CharField(
        max_length=10, choices=TurnStatus.choices(), default=TurnStatus.RUNNING.value
    )
    agent_slug = models.CharField(max_length=50, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    route_agent = models.CharField(
        max_length=50, blank=True, help_text="Where routing started the turn."
    )
    route_confidence = models.FloatField(null=True, blank=True)
    route_path = models.CharField(
        max_length=12,
        blank=True,
        choices=[
            ("fast", "Fast path: straight to the specialist"),
            ("orchestrator", "The orchestrator's model decided"),
            ("fallback", "Nothing fits: fallback agent"),
            ("sticky", "Follow-up stayed with the specialist"),
        ],
    )
    error_code = models.CharField(max_length=30, blank=True)
    error = models.TextField(blank=True)
    # Guardrails (docs/guardrails.md): which one stopped the turn, the attack's or the
    # leak's kind, its score; the input check's time on every turn.
    guardrail = models.CharField(
        max_length=12,
        blank=True,
        choices=GuardrailName.choices(),
        help_text="The guardrail that stopped the turn.",
    )
    guardrail_kind = models.CharField(max_length=20, blank=True)
    guardrail_score = models.FloatField(null=True, blank=True)
    guardrail_ms = models.FloatField(
        null=True, blank=True, help_text="Milliseconds the input guardrail took in this turn."
    )
    # Staff judged the block wrong: the message is trained on as ordinary from then on.
    false_positive = models.BooleanField(default=False)
    false_positive_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    false_positive_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["started_at"],
                condition=~models.Q(guardrail=""),
                name="turn_guardrail_started",
            )
        ]

    def __str__(self) -> str:
        return f"Turn {str(self.uuid)[:8]} ({self.status})"


class TurnEvent(models.Model):
    """What happened during a turn besides messages: handoffs, tool calls, errors."""

    Kind = TurnEventKind

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=Kind.choices())
    data = EncryptedJSONField(default=dict)  # tool arguments and outputs: the user's words
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} in turn {self.turn_id}"


class Feedback(models.Model):
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    value = models.CharField(max_length=4, choices=[("up", "Thumbs up"), ("down", "Thumbs down")])
    comment = EncryptedTextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.value} on {self.message_id}"


class ConversationEvent(models.Model):
    """One change of a conversation's status or owner: the record the figures (time to
    first human reply, time to resolution, escalation rate) are computed from."""

    Kind = ConversationEventKind

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=Kind.choices())
    from_status = models.CharField(max_length=10, choices=ConversationStatus.choices())
    to_status = models.CharField(max_length=10, choices=ConversationStatus.choices())
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The member of staff who did it (none: the user, an agent, the system).",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The owner after the change.",
    )
    source = models.CharField(max_length=10, choices=EscalationSource.choices())
    reason = EncryptedTextField(blank=True)  # the user's words asking for a person, or a note
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["conversation", "id"], name="convevent_conv_id")]

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status} ({self.source})"


class StaffNote(models.Model):
    """A private note on a conversation: never sent to the user or any model."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="staff_notes"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = EncryptedTextField(max_length=4000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text[:60]


class StaffPresence(models.Model):
    """When a member of staff was last seen (a staff action, later the inbox socket):
    'online' is seen within SUPERORCH_STAFF_ONLINE_SECONDS."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presence"
    )
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.user} seen {self.last_seen:%Y-%m-%d %H:%M}"


class OpeningHours(models.Model):
    """One opening span of a site's week, in the site's time zone. Two spans on a day
    (a lunch break) are two rows; a closing time of 00:00 means midnight."""

    WEEKDAYS = [
        (0, "Monday"),
        (1, "Tuesday"),
        (2, "Wednesday"),
        (3, "Thursday"),
        (4, "Friday"),
        (5, "Saturday"),
        (6, "Sunday"),
    ]

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="opening_hours")
    weekday = models.PositiveSmallIntegerField(choices=WEEKDAYS)
    opens = models.TimeField()
    closes = models.TimeField(help_text="00:00 means midnight (the end of the day).")

    class Meta:
        ordering = ["site", "weekday", "opens"]
        verbose_name_plural = "opening hours"

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}-{self.closes:%H:%M}"

    def clean(self) -> None:
        known = self.opens is not None and self.closes is not None
        if known and self.closes != MIDNIGHT and self.closes <= self.opens:
            raise ValidationError(
                {
                    "closes": "The closing time must be after the opening time "
                    "(00:00 means midnight; split a night across two days)."
                }
            )


class Holiday(models.Model):
    """A day a site's team is away (in the site's time zone): closed all day."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["site", "date"]
        constraints = [
            models.UniqueConstraint(fields=["site", "date"], name="unique_holiday_per_site")
        ]

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.name}".strip()


class StaffToken(models.Model):
    """A personal token for the staff API (`manage.py staff_token USERNAME`). Only its
    SHA-256 digest is stored: the token itself is shown once, when it is made."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_tokens"
    )
    digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=12, editable=False, help_text="The token's first characters, to tell it apart."
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… for {self.user}"


class CannedReply(models.Model):
    """A saved answer staff insert into a reply from the inbox (and edit before sending)."""

    title = models.CharField(max_length=80, unique=True)
    text = models.TextField(max_length=4000)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["title"]
        verbose_name_plural = "canned replies"

    def __str__(self) -> str:
        return self.title


class ErasureRecord(models.Model):
    """What an erasure of a user's data removed (docs/privacy.md): no content, no user id,
    only the id's SHA-256 (to answer "was this user erased?"), the counts, who and when."""

    site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="erasures"
    )
    site_key = models.CharField(max_length=64, help_text="The site's key at the time.")
    user_id_sha256 = models.CharField(
        max_length=64, db_index=True, help_text="SHA-256 of the user id, in hex."
    )
    counts = models.JSONField(default=dict, help_text="Rows deleted, per kind.")
    by = models.CharField(
        max_length=150, help_text='"command" (manage.py user_data) or the staff username.'
    )
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Erasure on {self.site_key} at {self.created_at:%Y-%m-%d %H:%M}"


class StaffAuditEntry(models.Model):
    """One thing a member of staff did, append-only (chat/audit.py, docs/security.md):
    who, what, on which conversation, when, and details without any message's text.
    Changes to the registry, actions, sites and the like are django-auditlog's entries
    (Admin → Auditlog), with their before and after."""

    class Action(models.TextChoices):
        READ = "read", "Read a transcript"
        TAKE_OVER = "take_over", "Took a conversation over"
        REPLY = "reply", "Replied"
        HAND_BACK = "hand_back", "Handed back to the agents"
        RESOLVE = "resolve", "Resolved"
        ASSIGN = "assign", "Assigned"
        NOTE = "note", "Added a note"
        APPROVAL = "approval", "Decided an approval"
        EXPORT = "export", "Exported a user's data"
        ERASE = "erase", "Erased a user's data"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="Kept if the account goes.")
    action = models.CharField(max_length=20, choices=Action.choices, db_index=True)
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "staff audit entry"
        verbose_name_plural = "staff audit log"

    def __str__(self) -> str:
        return f"{self.actor_name} {self.get_action_display().lower()} {self.at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("The audit log is append-only: an entry is never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("The audit log is append-only: an entry is never deleted.")


class Attachment(models.Model):
    """A file a user sent (an image or a PDF), checked by its content (chat.filetypes) and
    stored through Django's storage API; the user message it came with is its place in the
    conversation. The file is removed from storage when the row goes (chat.attachments)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="attachments"
    )
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="attachment")
    file = models.FileField(upload_to=_attachment_path, max_length=200)
    name = models.CharField(max_length=100, help_text="The file's name, made safe.")
    kind = models.CharField(max_length=5, choices=[(t.value, t.label) for t in ALL_TYPES])
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField(help_text="Bytes.")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_image(self) -> bool:
        return FileType(self.kind).is_image

    @property
    def key(self) -> str:
        """The download link's key: an HMAC of the attachment's id under SECRET_KEY, so
        only those the conversation's frames reached (its sockets, staff) know the link."""
        return attachment_key(self.uuid)

    @property
    def user_url(self) -> str:
        """The link the conversation's own pages use (an <img> sends no token header)."""
        return f"{self.staff_url}?key={self.key}"

    @property
    def staff_url(self) -> str:
        """The link for logged-in staff (their role is checked on each download)."""
        return reverse("chat:attachment", kwargs={"key": self.uuid})


def attachment_key(attachment_uuid: uuid.UUID | str) -> str:
    return salted_hmac("superorch.attachment", str(attachment_uuid)).hexdigest()
