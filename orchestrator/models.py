"""The agent registry, knowledge base, shared context store and run records."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from .domain.enums import (
    AgentRole,
    AlertMetric,
    BreakerState,
    ErrorKind,
    ModelProvider,
    RunStatus,
    StepKind,
    StepStatus,
    UnsurePolicy,
    WorkflowStatus,
)
from .domain.tool_names import TOOL_LABELS

__all__ = [
    "AgentRole",
    "AlertMetric",
    "BreakerState",
    "ErrorKind",
    "ModelProvider",
    "RunStatus",
    "StepKind",
    "StepStatus",
    "UnsurePolicy",
    "WorkflowStatus",
]


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
    role = models.CharField(
        max_length=20, choices=AgentRole.choices(), default=AgentRole.SPECIALIST.value
    )
    instructions = models.TextField(help_text="The agent's system prompt.")
    handoff_description = models.CharField(
        max_length=300, help_text="One sentence: what this agent handles. Used for routing."
    )
    model_provider = models.CharField(
        max_length=30, choices=ModelProvider.choices(), default=ModelProvider.AUTO.value
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
        help_text="Where routing sends this agent's turns while it is disabled, degraded or "
        "full, and where a turn goes when this agent's model fails.",
    )
    timeout_seconds = models.PositiveIntegerField(
        default=30,
        help_text="Longest wait for this agent's model to say anything (first token, or the next "
        "one) before the attempt counts as failed. 0: no limit (the turn timeout still applies).",
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


class RoutingSettings(models.Model):
    """How the router's decisions are used (one row)."""

    threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Confidence below which nothing fits. Blank: the router's calibrated default.",
    )
    when_unsure = models.CharField(
        max_length=20, choices=UnsurePolicy.choices(), default=UnsurePolicy.FALLBACK.value
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


def unique_article_slug(title: str, *, exclude_pk: int | None = None) -> str:
    """A help centre slug from the title, with -2, -3 ... when another article has it."""
    base = slugify(title)[:200].strip("-") or "article"
    taken = KnowledgeArticle.objects.exclude(pk=exclude_pk).filter(slug__startswith=base)
    used = set(taken.values_list("slug", flat=True))
    slug, n = base, 2
    while slug in used:
        slug, n = f"{base}-{n}", n + 1
    return slug


class KnowledgeArticle(models.Model):
    agent = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="articles")
    title = models.CharField(max_length=200)
    # The article's public address on the help centre (/help/<slug>/): filled from the
    # title when left blank, then kept, so links in old answers keep working.
    slug = models.SlugField(
        max_length=220,
        unique=True,
        blank=True,
        help_text="Its address on the help centre; filled from the title when blank.",
    )
    published = models.BooleanField(
        default=True,
        help_text="Shown on the public help centre and used in answers.",
    )
    body = models.TextField(help_text="Markdown. Each ## heading starts a section.")
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

    def save(self, *args, **kwargs) -> None:
        if not self.slug:
            self.slug = unique_article_slug(self.title, exclude_pk=self.pk)
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("chat:help-article", kwargs={"slug": self.slug})

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
    status = models.CharField(
        max_length=20, choices=RunStatus.choices(), default=RunStatus.RUNNING.value
    )
    error = models.TextField(blank=True)
    error_kind = models.CharField(
        max_length=20,
        blank=True,
        help_text="timeout, server_error, rate_limited, connection, bad_response, other",
    )
    requests = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["agent_slug", "started_at"], name="agentrun_agent_time"),
            # The dashboard's window scans: every run since a time, read from the index
            # alone on PostgreSQL (it carries every column the figures use).
            models.Index(
                fields=["started_at"],
                include=[
                    "agent_slug",
                    "model_name",
                    "status",
                    "duration_ms",
                    "ttft_ms",
                    "turn_id",
                    "input_tokens",
                    "output_tokens",
                    "error_kind",
                ],
                name="agentrun_time",
            ),
            models.Index(
                fields=["status"],
                condition=models.Q(status=RunStatus.RUNNING),
                name="agentrun_running",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent_slug} {self.status} {self.started_at:%Y-%m-%d %H:%M:%S}"


class Workflow(models.Model):
    """A named multi-agent workflow: steps (agent, parallel group, condition) as JSON."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(
        max_length=300, help_text="What it does; agents read this to decide when to start it."
    )
    triggers = models.CharField(
        max_length=300,
        blank=True,
        help_text="Comma-separated words or phrases; the offline model starts this workflow "
        "when a message contains one of them (LLMs decide from the description).",
    )
    definition = models.JSONField(
        help_text="Steps as JSON; see docs/workflows.md. Validated when saved."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def trigger_list(self) -> list[str]:
        return [t.strip().lower() for t in self.triggers.split(",") if t.strip()]


class WorkflowRun(models.Model):
    """One run of a workflow, with the definition as it was when it started."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workflow = models.ForeignKey(
        Workflow, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    workflow_slug = models.CharField(max_length=50)
    definition = models.JSONField()
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    turn_id = models.UUIDField(null=True, blank=True)
    started_by = models.CharField(max_length=20, default="agent")  # agent, staff
    input = models.TextField(blank=True)
    status = models.CharField(
        max_length=20, choices=WorkflowStatus.choices(), default=WorkflowStatus.QUEUED.value
    )
    decisions = models.JSONField(default=dict, blank=True)  # condition id -> "then" / "else"
    total_steps = models.PositiveIntegerField(default=0)
    done_steps = models.PositiveIntegerField(default=0)
    result = models.TextField(blank=True)
    error = models.TextField(blank=True)
    # A chat turn is waiting for the answer; when none is, it is posted to the conversation.
    waiting = models.BooleanField(default=False)
    delivered = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "workflow run"

    def __str__(self) -> str:
        return f"{self.workflow_slug} {self.status} {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def duration_ms(self) -> int | None:
        if self.finished_at is None:
            return None
        return int((self.finished_at - self.created_at).total_seconds() * 1000)


class StepRun(models.Model):
    """One step of a workflow run: an agent step or a condition's decision."""

    Kind = StepKind
    Status = StepStatus

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="steps")
    step_id = models.CharField(max_length=50)
    kind = models.CharField(max_length=20, choices=Kind.choices(), default=Kind.AGENT.value)
    agent_slug = models.CharField(max_length=50, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices(), default=Status.QUEUED.value)
    attempts = models.PositiveIntegerField(default=0)
    output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(
        max_length=200, blank=True, help_text="Host and pid of the last attempt."
    )
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["queued_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step_id"], name="unique_step_per_run")
        ]

    def __str__(self) -> str:
        return f"{self.step_id} {self.status}"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)


class AgentHealth(models.Model):
    """The circuit breaker of one agent's model, shared by every process."""

    agent_slug = models.CharField(max_length=50, unique=True)
    state = models.CharField(
        max_length=20, choices=BreakerState.choices(), default=BreakerState.CLOSED.value
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "agent health"
        ordering = ["agent_slug"]

    def __str__(self) -> str:
        return f"{self.agent_slug}: {self.state}"


class ModelPrice(models.Model):
    """What a model costs, for the dashboard's estimated cost (per million tokens)."""

    model_name = models.CharField(max_length=100, unique=True)
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    output_per_million = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    currency = models.CharField(max_length=3, default="USD")

    class Meta:
        ordering = ["model_name"]

    def __str__(self) -> str:
        return self.model_name


class AlertRule(models.Model):
    """Raise an alert when a figure goes above a line over a window."""

    name = models.CharField(max_length=100)
    metric = models.CharField(max_length=20, choices=AlertMetric.choices())
    agent_slug = models.CharField(max_length=50, blank=True, help_text="Blank: all agents.")
    threshold = models.FloatField(help_text="Error rate as a share (0.2 = 20 %), or milliseconds.")
    window_minutes = models.PositiveIntegerField(default=15)
    min_runs = models.PositiveIntegerField(
        default=5, help_text="Fewer runs in the window than this never raise an alert."
    )
    email = models.CharField(max_length=300, blank=True, help_text="Comma-separated addresses.")
    webhook_url = models.URLField(blank=True, help_text="Gets a JSON POST signed with HMAC-SHA256.")
    webhook_secret = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    """One incident of a rule: raised once when the figure crosses, cleared once it recovers."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    raised_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(help_text="The figure when it was raised.")
    last_value = models.FloatField(null=True, blank=True)
    notified = models.TextField(blank=True, help_text="Where it was sent, and how that went.")

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule"],
                condition=models.Q(cleared_at__isnull=True),
                name="one_open_alert_per_rule",
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule.name} at {self.raised_at:%Y-%m-%d %H:%M}"
