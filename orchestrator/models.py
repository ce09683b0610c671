"""The agent registry, knowledge base, shared context store and run records."""

from __future__ import annotations

import json
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from .crypto_fields import EncryptedJSONField, EncryptedTextField
from .domain import actions as action_rules
from .domain import mcp as mcp_rules
from .domain import rollups as rollup_domain
from .domain.enums import (
    ActionCallStatus,
    AgentRole,
    AlertMetric,
    ApprovalPolicy,
    ApprovalStatus,
    BreakerState,
    ErrorKind,
    HttpMethod,
    ModelProvider,
    RunStatus,
    StepKind,
    StepStatus,
    UnsurePolicy,
    WorkflowStatus,
)
from .domain.tool_names import TOOL_LABELS
from .secret_box import seal, unseal

__all__ = [
    "ActionCallStatus",
    "AgentRole",
    "ApprovalPolicy",
    "ApprovalStatus",
    "AlertMetric",
    "BreakerState",
    "ErrorKind",
    "HttpMethod",
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


def default_context_keys() -> list[str]:
    return ["*"]


def validate_context_keys(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValidationError(
            'Context keys must be a list of key patterns, e.g. ["plan", "invoice_*"].'
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
    # Permissions, checked when a tool is called (orchestrator.domain.permissions).
    actions = models.ManyToManyField(
        "Action",
        blank=True,
        related_name="agents",
        help_text="The actions on the site's systems this agent may call.",
    )
    mcp_servers = models.ManyToManyField(
        "McpServer",
        blank=True,
        related_name="agents",
        help_text="MCP servers whose allowed tools this agent may call.",
    )
    knowledge_bases = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="+",
        help_text="Other agents whose articles this agent may search (its own always).",
    )
    context_keys = models.JSONField(
        default=default_context_keys,
        blank=True,
        validators=[validate_context_keys],
        help_text='Context keys it may read and write, as patterns ("invoice_*"); "*": all; '
        "empty: none.",
    )
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
    value = EncryptedJSONField(null=True, blank=True)
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
    input = EncryptedTextField(blank=True)
    status = models.CharField(
        max_length=20, choices=WorkflowStatus.choices(), default=WorkflowStatus.QUEUED.value
    )
    decisions = models.JSONField(default=dict, blank=True)  # condition id -> "then" / "else"
    total_steps = models.PositiveIntegerField(default=0)
    done_steps = models.PositiveIntegerField(default=0)
    result = EncryptedTextField(blank=True)
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
    output = EncryptedTextField(blank=True)
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


class ActionSecret(models.Model):
    """A value an action sends (an API token, the signing secret), encrypted at rest.

    Never shown: not to a model, not in a transcript, not in a log, not in the admin
    (which only says whether it is set). `reveal()` is called at the moment of a call.
    """

    name = models.SlugField(
        max_length=50, unique=True, help_text="How actions refer to it, e.g. acme_backend."
    )
    ciphertext = models.TextField(editable=False)
    note = models.CharField(max_length=200, blank=True, help_text="What it is, for staff.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "action secret"

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<ActionSecret {self.name}>"

    def set_value(self, value: str) -> None:
        self.ciphertext = seal(value)

    def reveal(self) -> str | None:
        """The value, or None when no key opens it (SECRET_KEY changed)."""
        return unseal(self.ciphertext)

    @property
    def is_set(self) -> bool:
        return bool(self.ciphertext)


def validate_action_name(value: str) -> None:
    if not action_rules.NAME.match(value or ""):
        raise ValidationError(
            "Use lowercase letters, digits and underscores, starting with a letter "
            "(the model calls the action by this name)."
        )
    if value in TOOL_LABELS:
        raise ValidationError("%(name)s is a built-in tool's name.", params={"name": value})


class Action(models.Model):
    """An HTTP call on the site's own systems that agents may make (docs/actions.md)."""

    name = models.CharField(
        max_length=64,
        unique=True,
        validators=[validate_action_name],
        help_text="The tool name the model calls, e.g. lookup_invoice.",
    )
    description = models.TextField(
        max_length=1000, help_text="What it does and when to use it: models read this."
    )
    examples = models.TextField(
        blank=True,
        help_text="One per line: what a user says when they need it. The offline model picks "
        "actions from these and the description.",
    )
    arguments_schema = models.JSONField(
        default=dict, help_text="JSON Schema of the arguments (an object); see docs/actions.md."
    )
    method = models.CharField(max_length=10, choices=HttpMethod.choices(), default="GET")
    url_template = models.CharField(
        max_length=500,
        help_text="e.g. https://api.example.com/invoices/{number}: {name} is an argument, "
        "percent-encoded. The host must be in SUPERORCH_ACTION_HOSTS.",
    )
    headers = models.JSONField(
        default=dict,
        blank=True,
        help_text='Extra headers from stored secrets: {"Authorization": "acme_token"} sends '
        "the secret acme_token's value.",
    )
    signing_secret = models.ForeignKey(
        ActionSecret,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Signs every request (X-Superorch-Signature) so the system can check it.",
    )
    timeout_seconds = models.FloatField(default=5.0, help_text="0.1 to 60 seconds.")
    max_response_bytes = models.PositiveIntegerField(
        default=65536, help_text="A longer answer is refused (at most 1 MB)."
    )
    response_fields = models.JSONField(
        default=list,
        blank=True,
        help_text='Fields of the answer the model may see, e.g. ["status", "amount"] '
        '("customer.country" for a nested one). Empty: none.',
    )
    approval = models.CharField(
        max_length=20, choices=ApprovalPolicy.choices(), default=ApprovalPolicy.NONE.value
    )
    approval_amount_path = models.CharField(
        max_length=100,
        blank=True,
        help_text='For "staff above": the amount\'s argument, e.g. amount.',
    )
    approval_threshold = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text='For "staff above": amounts above this need a member of staff.',
    )
    approval_summary = models.CharField(
        max_length=200,
        blank=True,
        help_text="What the person approving reads, with {argument} placeholders, e.g. "
        '"Refund EUR {amount} for invoice {invoice}". Empty: the description and arguments.',
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def example_list(self) -> list[str]:
        return [line.strip() for line in self.examples.splitlines() if line.strip()]

    def clean(self) -> None:
        from django.conf import settings

        errors: dict[str, list[str]] = {}
        schema = self.arguments_schema
        if problems := action_rules.schema_problems(schema):
            errors["arguments_schema"] = problems
        if problems := action_rules.url_problems(
            self.url_template, schema if isinstance(schema, dict) else {},
            settings.SUPERORCH_ACTION_HOSTS,
        ):  # fmt: skip
            errors["url_template"] = problems
        names = ActionSecret.objects.values_list("name", flat=True)
        if problems := action_rules.header_problems(self.headers, names):
            errors["headers"] = problems
        if not 0.1 <= (self.timeout_seconds or 0) <= 60:
            errors["timeout_seconds"] = ["Between 0.1 and 60 seconds."]
        if not 1 <= (self.max_response_bytes or 0) <= 1_000_000:
            errors["max_response_bytes"] = ["Between 1 byte and 1 MB (1000000)."]
        fields = self.response_fields
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            errors["response_fields"] = ['A list of field names, e.g. ["status", "amount"].']
        if problems := action_rules.summary_problems(
            self.approval_summary, schema if isinstance(schema, dict) else {}
        ):
            errors["approval_summary"] = problems
        if self.approval == ApprovalPolicy.STAFF_ABOVE and (
            not self.approval_amount_path or self.approval_threshold is None
        ):
            errors["approval_threshold"] = [
                '"Staff above" needs the amount argument and a threshold.'
            ]
        if errors:
            raise ValidationError(errors)


class ActionCall(models.Model):
    """One call of an action or a tool: made, refused, invalid or waiting for approval.

    Arguments are what the model asked for (never a secret: those are added to the
    request only); `output` is what the model was shown.
    """

    Status = ActionCallStatus

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    action = models.ForeignKey(
        Action, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    tool = models.CharField(max_length=100, help_text="What the model called.")
    agent_slug = models.CharField(max_length=50, blank=True)
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    turn_id = models.UUIDField(null=True, blank=True, help_text="Or the workflow run's id.")
    arguments = EncryptedJSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices())
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="What went wrong, in the words the model got.")
    output = EncryptedTextField(blank=True, help_text="What the model was shown.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    approval = models.CharField(
        max_length=10, blank=True, help_text="Who had to approve it: user or staff."
    )
    approved_by = models.CharField(
        max_length=200, blank=True, help_text="Who approved it: the user, or a member of staff."
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "action call"

    def __str__(self) -> str:
        return f"{self.tool} {self.status} {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def arguments_text(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False, default=str)


class Approval(models.Model):
    """An action call waiting for a yes or no (docs/actions.md, "Approvals").

    The paused run is kept as the Agents SDK's serialised RunState; the answer resumes it
    as a new turn of the conversation. `call_id` is the call's id from the start (its
    ActionCall row and the X-Superorch-Call header): however often the resume is tried
    (a server or worker killed between the yes and the call), the site sees one call.
    """

    Status = ApprovalStatus

    call_id = models.UUIDField(
        unique=True, default=uuid.uuid4, editable=False, help_text="The call's id (its record)."
    )
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    conversation_id = models.UUIDField(db_index=True)
    turn_id = models.UUIDField(db_index=True, help_text="The turn that paused for it.")
    action = models.ForeignKey(
        Action, null=True, blank=True, on_delete=models.SET_NULL, related_name="approvals"
    )
    tool = models.CharField(max_length=100)
    agent_slug = models.CharField(max_length=50)
    start_agent = models.CharField(max_length=50, help_text="Where the paused run started.")
    tool_call_id = models.CharField(max_length=200, help_text="The model's id of the call.")
    arguments = EncryptedJSONField(default=dict, blank=True)
    summary = models.CharField(max_length=300)
    by = models.CharField(max_length=10, help_text="Who decides: user or staff.")
    status = models.CharField(
        max_length=10, choices=Status.choices(), default=Status.PENDING.value, db_index=True
    )
    run_state = EncryptedTextField(help_text="The paused run (the SDK's RunState, as JSON).")
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.summary} ({self.get_status_display()})"


class McpServer(models.Model):
    """A Model Context Protocol server (streamable HTTP) whose allowed tools agents may call
    (docs/actions.md, MCP servers). Its tool listing is stored by the admin's check."""

    name = models.CharField(
        max_length=40,
        unique=True,
        help_text="Lowercase letters, digits and underscores; its tools are called "
        "<name>__<tool>, e.g. shop__order_status.",
    )
    url = models.CharField(
        max_length=500,
        help_text="The streamable HTTP endpoint, e.g. https://mcp.example.com/mcp. The host "
        "must be in SUPERORCH_ACTION_HOSTS.",
    )
    headers = models.JSONField(
        default=dict,
        blank=True,
        help_text='Headers from stored secrets: {"Authorization": "shop_token"} sends the '
        "secret shop_token's value (Action secrets).",
    )
    timeout_seconds = models.FloatField(default=10.0, help_text="0.1 to 120 seconds.")
    allowed_tools = models.JSONField(
        default=list,
        blank=True,
        help_text='The tools agents may call, e.g. ["order_status"]. Empty: none.',
    )
    tools = models.JSONField(
        default=list,
        blank=True,
        editable=False,
        help_text="The server's tools as its last check listed them.",
    )
    checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "MCP server"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.conf import settings

        errors: dict[str, list[str]] = {}
        if problems := mcp_rules.name_problems(self.name, TOOL_LABELS):
            errors["name"] = problems
        if refusal := action_rules.host_refusal(self.url, settings.SUPERORCH_ACTION_HOSTS):
            errors["url"] = [refusal.replace("The action's address", "The address")]
        names = ActionSecret.objects.values_list("name", flat=True)
        if problems := action_rules.header_problems(self.headers, names):
            errors["headers"] = problems
        if not 0.1 <= (self.timeout_seconds or 0) <= 120:
            errors["timeout_seconds"] = ["Between 0.1 and 120 seconds."]
        listing = mcp_rules.listing_from(self.tools if isinstance(self.tools, list) else [])
        if problems := mcp_rules.allowed_tools_problems(self.allowed_tools, listing):
            errors["allowed_tools"] = problems
        if errors:
            raise ValidationError(errors)


class AgentRunRollup(models.Model):
    """Finished AgentRuns summed over a minute (span 60) or an hour (span 3600) per
    agent, model and error kind, with latency histograms (orchestrator.rollups; the
    buckets in orchestrator.domain.rollups). No conversation, turn or text: only
    counts, so they stay when runs are purged or erased (docs/privacy.md)."""

    span = models.PositiveIntegerField(help_text="Seconds: 60 or 3600.")
    start = models.DateTimeField()
    agent_slug = models.CharField(max_length=50)
    model_name = models.CharField(max_length=100)
    error_kind = models.CharField(max_length=20, blank=True)
    runs = models.PositiveIntegerField(default=0)
    ok = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    finished = models.PositiveIntegerField(default=0)
    # Turns counted where each (turn, agent) / (turn, model) pair has its first run.
    turns_by_agent = models.PositiveIntegerField(default=0)
    turns_by_model = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    # d00..d76: finished runs per duration bucket; t00..t76: answered runs per TTFT
    # bucket (added below, one column a bucket).

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["span", "start", "agent_slug", "model_name", "error_kind"],
                name="agentrunrollup_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.agent_slug} {self.model_name} {self.start:%Y-%m-%d %H:%M} /{self.span}s"


ROLLUP_DURATION_FIELDS = tuple(f"d{i:02d}" for i in range(rollup_domain.BUCKETS))
ROLLUP_TTFT_FIELDS = tuple(f"t{i:02d}" for i in range(rollup_domain.BUCKETS))
for _name in (*ROLLUP_DURATION_FIELDS, *ROLLUP_TTFT_FIELDS):
    AgentRunRollup.add_to_class(_name, models.PositiveIntegerField(default=0))


class AgentRunRollupMark(models.Model):
    """How far the rollups reach (one row): every minute before `minutes_until` and
    every hour before `hours_until` is rolled up."""

    minutes_until = models.DateTimeField(null=True, blank=True)
    hours_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rolled up to {self.minutes_until}"
