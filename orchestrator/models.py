"""The agent registry, knowledge base, shared context store and run records."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from .tool_names import TOOL_LABELS


class AgentRole(models.TextChoices):
    ORCHESTRATOR = "orchestrator", "Orchestrator"
    SPECIALIST = "specialist", "Specialist"
    FALLBACK = "fallback", "Fallback"


class ModelProvider(models.TextChoices):
    AUTO = "auto", "Automatic (OpenAI-compatible URL, else OpenAI key, else offline model)"
    LOCAL = "local", "Local offline model"
    OPENAI = "openai", "OpenAI (OPENAI_API_KEY)"
    COMPATIBLE = "openai_compatible", "OpenAI-compatible server (OPENAI_BASE_URL)"


def validate_tool_names(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError("Tools must be a list of tool names.")
    unknown = sorted(set(value) - set(TOOL_LABELS))
    if unknown:
        raise ValidationError(
            "Unknown tool(s): %(names)s. Available: %(available)s.",
            params={"names": ", ".join(unknown), "available": ", ".join(TOOL_LABELS)},
        )


class AgentProfileQuerySet(models.QuerySet):
    def update(self, **kwargs):
        """Bulk updates move the registry's version stamp too, as save() does."""
        kwargs.setdefault("updated_at", timezone.now())
        return super().update(**kwargs)


class AgentProfile(models.Model):
    """One agent of the team, as configured by staff. Edits apply on the next turn."""

    slug = models.SlugField(
        max_length=50,
        unique=True,
        help_text="Stable identifier: lowercase letters, digits and underscores.",
    )
    name = models.CharField(max_length=80)
    role = models.CharField(max_length=20, choices=AgentRole.choices, default=AgentRole.SPECIALIST)
    instructions = models.TextField(help_text="The agent's system prompt.")
    handoff_description = models.CharField(
        max_length=300, help_text="One sentence: what this agent handles. Used for routing."
    )
    model_provider = models.CharField(
        max_length=30, choices=ModelProvider.choices, default=ModelProvider.AUTO
    )
    model_name = models.CharField(
        max_length=100, blank=True, help_text="Blank uses SUPERORCH_DEFAULT_MODEL."
    )
    enabled = models.BooleanField(default=True)
    tools = models.JSONField(default=list, blank=True, validators=[validate_tool_names])
    handoffs = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="handoff_sources"
    )
    degraded = models.BooleanField(
        default=False,
        help_text="A degraded agent is skipped by routing for its alternative (or the fallback).",
    )
    max_concurrency = models.PositiveIntegerField(
        default=0,
        help_text="Turns this agent may run at once; beyond it routing uses the alternative. 0: no limit.",
    )
    alternative = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Where routing sends this agent's turns while it is disabled, degraded or full.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgentProfileQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name = "agent"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.slug and not self.slug.replace("_", "").isalnum():
            raise ValidationError({"slug": "Use lowercase letters, digits and underscores only."})
        if self.slug:
            self.slug = self.slug.lower()


class UnsurePolicy(models.TextChoices):
    FALLBACK = "fallback", "Send it to the fallback agent"
    ORCHESTRATOR = "orchestrator", "Let the orchestrator's LLM decide (when an LLM is configured)"


class RoutingSettings(models.Model):
    """How the router's decisions are used (one row)."""

    threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Confidence below which nothing fits. Blank: the router's calibrated default.",
    )
    when_unsure = models.CharField(
        max_length=20, choices=UnsurePolicy.choices, default=UnsurePolicy.FALLBACK
    )
    topic_change_margin = models.FloatField(
        default=0.15,
        help_text="A follow-up leaves the current specialist only when another agent is confident "
        "and beats it by this much.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "routing settings"

    def __str__(self) -> str:
        return "Routing settings"

    @classmethod
    def load(cls) -> RoutingSettings:
        settings_row, _ = cls.objects.get_or_create(pk=1)
        return settings_row


class RoutingExample(models.Model):
    agent = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="examples")
    text = models.CharField(max_length=500)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text


class KnowledgeArticle(models.Model):
    agent = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="articles")
    title = models.CharField(max_length=200)
    body = models.TextField(help_text="Markdown.")
    tags = models.CharField(max_length=300, blank=True, help_text="Comma-separated.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["agent_id", "title"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "title"], name="unique_article_title_per_agent"
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def tag_list(self) -> list[str]:
        return [t.strip() for t in self.tags.split(",") if t.strip()]


class ContextEntry(models.Model):
    """A key in the shared context store: per conversation, or global (blank conversation)."""

    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    key = models.CharField(max_length=100)
    value = models.JSONField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "context entries"
        constraints = [
            models.UniqueConstraint(
                fields=["conversation_id", "key"], name="unique_context_key_per_conversation"
            ),
            models.UniqueConstraint(
                fields=["key"],
                condition=models.Q(conversation_id__isnull=True),
                name="unique_global_context_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id or 'global'}:{self.key}"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    OK = "ok", "OK"
    HANDOFF = "handoff", "Handed off"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"


class AgentRun(models.Model):
    """One agent's part of a turn: from becoming active to handing off or finishing."""

    id = models.BigAutoField(primary_key=True)
    agent = models.ForeignKey(
        AgentProfile, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    agent_slug = models.CharField(max_length=50, db_index=True)
    conversation_id = models.UUIDField(db_index=True)
    turn_id = models.UUIDField(db_index=True)
    provider = models.CharField(max_length=30)
    model_name = models.CharField(max_length=100)
    started_at = models.DateTimeField(default=timezone.now)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.RUNNING)
    error = models.TextField(blank=True)
    requests = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["agent_slug", "started_at"], name="agentrun_agent_time")]

    def __str__(self) -> str:
        return f"{self.agent_slug} {self.status} {self.started_at:%Y-%m-%d %H:%M:%S}"
