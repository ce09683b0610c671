"""Sites, conversations, messages, turns and feedback."""

from __future__ import annotations

import secrets
import uuid

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from .enums import MessageStatus, Position, Role, Theme, TurnEventKind, TurnStatus
from .origins import parse_origins, validate_origins


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
        max_length=16, default="en", help_text="BCP 47 tag, e.g. en or fr-CA."
    )

    def __str__(self) -> str:
        return self.name

    @property
    def origin_list(self) -> list[str]:
        return parse_origins(self.allowed_origins)


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
    page_context = models.JSONField(default=dict, blank=True)
    # A server running this conversation's turns holds the lease until then.
    busy_until = models.DateTimeField(null=True, blank=True, editable=False)
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
    text = models.TextField()
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
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"


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

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Turn {str(self.uuid)[:8]} ({self.status})"


class TurnEvent(models.Model):
    """What happened during a turn besides messages: handoffs, tool calls, errors."""

    Kind = TurnEventKind

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=Kind.choices())
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} in turn {self.turn_id}"


class Feedback(models.Model):
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    value = models.CharField(max_length=4, choices=[("up", "Thumbs up"), ("down", "Thumbs down")])
    comment = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.value} on {self.message_id}"
