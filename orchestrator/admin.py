import secrets

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import truncatechars
from django.template.response import TemplateResponse
from django.urls import path

from . import dashboard, mcp, selectors, services
from .admin_records import RecordAdmin
from .forms import (
    ActionForm,
    ActionSecretForm,
    AgentProfileForm,
    KnowledgeArticleForm,
    McpServerForm,
    WorkflowForm,
)
from .models import (
    Action,
    ActionCall,
    ActionSecret,
    AgentHealth,
    AgentProfile,
    AgentRun,
    Alert,
    AlertRule,
    Approval,
    ContextEntry,
    KnowledgeArticle,
    McpServer,
    ModelPrice,
    RoutingExample,
    RoutingSettings,
    StepRun,
    Workflow,
    WorkflowRun,
)


class RoutingExampleInline(admin.TabularInline):
    model = RoutingExample
    extra = 1


class KnowledgeArticleInline(admin.StackedInline):
    model = KnowledgeArticle
    form = KnowledgeArticleForm
    extra = 0
    fields = ("title", "tags", "body")
    show_change_link = True


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    form = AgentProfileForm
    list_display = (
        "name",
        "slug",
        "role",
        "enabled",
        "model_provider",
        "model_name",
        "example_count",
    )
    list_filter = ("role", "enabled", "model_provider")
    list_editable = ("enabled",)
    search_fields = ("name", "slug", "handoff_description", "instructions")
    filter_horizontal = ("handoffs", "actions", "knowledge_bases", "mcp_servers")
    inlines = [RoutingExampleInline, KnowledgeArticleInline]
    fieldsets = (
        (None, {"fields": ("name", "slug", "role", "enabled")}),
        ("Behaviour", {"fields": ("instructions", "handoff_description", "tools", "handoffs")}),
        (
            "Permissions (checked at every call)",
            {"fields": ("actions", "mcp_servers", "knowledge_bases", "context_keys")},
        ),
        ("Model", {"fields": ("model_provider", "model_name")}),
        ("Load and health", {"fields": ("degraded", "max_concurrency", "alternative")}),
    )

    def get_urls(self):
        view = self.admin_site.admin_view(self.try_routing_view)
        return [path("try-routing/", view, name="orchestrator_try_routing"), *super().get_urls()]

    def try_routing_view(self, request: HttpRequest) -> HttpResponse:
        """Type a message, see where routing would send it and how sure it is; with the
        user's earlier messages and who answered them, as the message of a conversation."""
        text = (request.GET.get("q") or "").strip()[:2000]
        active = request.GET.get("active") or None
        raw_earlier = (request.GET.get("earlier") or "")[:6000]
        earlier = [line.strip() for line in raw_earlier.splitlines() if line.strip()][-10:]
        before = request.GET.get("before") or None
        decision = None
        if text:
            history = selectors.trial_history(earlier=earlier, answered_by=before, text=text)
            decision = services.route_decide(text=text, active=active, history=history).as_dict()
        team = selectors.team_snapshot()
        context = {
            **self.admin_site.each_context(request),
            "title": "Try routing",
            "opts": self.model._meta,
            "q": text,
            "active": active or "",
            "earlier": "\n".join(earlier),
            "before": before or "",
            "specialists": sorted(team.specialists(), key=lambda a: a.name),
            "decision": decision,
            "agents": sorted(team.agents.values(), key=lambda a: a.name),
            "names": {a.slug: a.name for a in team.agents.values()},
        }
        template = "admin/orchestrator/try_routing.html"
        if getattr(request, "htmx", False):
            template = "admin/orchestrator/_routing_decision.html"
        return TemplateResponse(request, template, context)

    @admin.display(description="routing examples")
    def example_count(self, obj: AgentProfile) -> int:
        return obj.examples.count()


@admin.register(KnowledgeArticle)
class KnowledgeArticleAdmin(admin.ModelAdmin):
    form = KnowledgeArticleForm
    list_display = ("title", "agent", "published", "slug", "updated_at")
    list_filter = ("agent", "published")
    search_fields = ("title", "body", "tags")


@admin.register(AgentRun)
class AgentRunAdmin(admin.ModelAdmin):
    list_display = (
        "started_at",
        "agent_slug",
        "status",
        "provider",
        "model_name",
        "ttft_ms",
        "duration_ms",
        "input_tokens",
        "output_tokens",
        "conversation_id",
    )
    list_filter = ("status", "agent_slug", "provider", "model_name", "started_at")
    search_fields = ("conversation_id", "turn_id", "error")
    date_hierarchy = "started_at"
    list_select_related = ("agent",)

    def get_urls(self):
        site = self.admin_site
        return [
            path(
                "dashboard/",
                site.admin_view(lambda request: dashboard.dashboard_view(site, request)),
                name="orchestrator_dashboard",
            ),
            path(
                "dashboard/series.json",
                site.admin_view(dashboard.dashboard_series_view),
                name="orchestrator_dashboard_series",
            ),
            *super().get_urls(),
        ]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ContextEntry)
class ContextEntryAdmin(admin.ModelAdmin):
    """The shared context store: a blank conversation id is a global key every agent sees."""

    list_display = ("key", "scope", "value", "updated_at")
    list_filter = (("conversation_id", admin.EmptyFieldListFilter),)
    search_fields = ("key", "conversation_id")

    @admin.display(description="scope", ordering="conversation_id")
    def scope(self, obj: ContextEntry) -> str:
        return str(obj.conversation_id) if obj.conversation_id else "global"


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    form = WorkflowForm
    list_display = ("name", "slug", "enabled", "triggers", "run_count", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("name", "slug", "description", "triggers")
    prepopulated_fields = {"slug": ("name",)}

    @admin.display(description="runs")
    def run_count(self, obj: Workflow) -> int:
        return obj.runs.count()


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    can_delete = False
    fields = (
        "step_id",
        "kind",
        "agent_slug",
        "status",
        "attempts",
        "duration",
        "worker",
        "output_start",
        "error",
    )
    readonly_fields = fields

    @admin.display(description="ms")
    def duration(self, obj: StepRun) -> int | None:
        return obj.duration_ms

    @admin.display(description="output")
    def output_start(self, obj: StepRun) -> str:
        text = obj.output
        return text if len(text) <= 400 else text[:400] + "…"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WorkflowRun)
class WorkflowRunAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "workflow_slug",
        "status",
        "progress",
        "duration",
        "started_by",
        "conversation_id",
    )
    list_filter = ("status", "workflow_slug", "started_by", "created_at")
    search_fields = ("uuid", "conversation_id", "input", "result", "error")
    date_hierarchy = "created_at"
    inlines = [StepRunInline]
    exclude = ("definition",)

    @admin.display(description="steps")
    def progress(self, obj: WorkflowRun) -> str:
        return f"{obj.done_steps} of {obj.total_steps}"

    @admin.display(description="ms")
    def duration(self, obj: WorkflowRun) -> int | None:
        return obj.duration_ms

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "definition"]

    def has_add_permission(self, request) -> bool:
        return False  # staff start workflows from a conversation's page

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a record of what happened


@admin.register(RoutingSettings)
class RoutingSettingsAdmin(admin.ModelAdmin):
    list_display = ("__str__", "threshold", "when_unsure", "topic_change_margin", "updated_at")

    def has_add_permission(self, request) -> bool:
        return not RoutingSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AgentHealth)
class AgentHealthAdmin(admin.ModelAdmin):
    """Circuit breakers. Closing one by hand lets routing use the agent again at once."""

    list_display = (
        "agent_slug",
        "state",
        "consecutive_failures",
        "opened_at",
        "last_failure_at",
        "last_success_at",
    )
    list_filter = ("state",)
    readonly_fields = (
        "agent_slug",
        "state",
        "consecutive_failures",
        "opened_at",
        "last_error",
        "last_failure_at",
        "last_success_at",
        "updated_at",
    )
    actions = ["close_breakers"]

    @admin.action(description="Close the breaker (the model is fixed)")
    def close_breakers(self, request, queryset) -> None:
        services.agent_health_reset(agent_slugs=list(queryset.values_list("agent_slug", flat=True)))

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ("model_name", "input_per_million", "output_per_million", "currency")


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "metric",
        "agent_slug",
        "threshold",
        "window_minutes",
        "enabled",
        "open_now",
    )
    list_filter = ("metric", "enabled")

    @admin.display(boolean=True, description="alert open")
    def open_now(self, obj: AlertRule) -> bool:
        return obj.alerts.filter(cleared_at__isnull=True).exists()


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("rule", "raised_at", "cleared_at", "value", "last_value")
    list_filter = ("rule", "cleared_at")
    readonly_fields = ("rule", "raised_at", "cleared_at", "value", "last_value", "notified")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ActionSecret)
class ActionSecretAdmin(admin.ModelAdmin):
    """Secrets actions send. The value is never shown: only whether it is set."""

    form = ActionSecretForm
    list_display = ("name", "masked", "note", "updated_at")
    search_fields = ("name", "note")

    @admin.display(description="value")
    def masked(self, obj: ActionSecret) -> str:
        return "•••••••• (set)" if obj.is_set else "not set"

    def get_readonly_fields(self, request, obj=None):
        return ("masked",) if obj else ()

    def save_model(self, request, obj: ActionSecret, form, change) -> None:
        value = form.cleaned_data.get("value") or ""
        if value:
            obj.set_value(value)
        elif not change or not obj.is_set:
            value = secrets.token_urlsafe(32)
            obj.set_value(value)
            self.message_user(
                request,
                f"Generated the value of {obj.name}; copy it now into your system's "
                f"configuration, it is not shown again: {value}",
                messages.WARNING,
            )
        super().save_model(request, obj, form, change)


@admin.register(Action)
class ActionAdmin(admin.ModelAdmin):
    """Actions on the site's systems: edits apply on the next call (no deploy)."""

    form = ActionForm
    list_display = ("name", "method", "url_template", "approval", "enabled", "agent_names")
    list_filter = ("enabled", "method", "approval")
    list_editable = ("enabled",)
    search_fields = ("name", "description", "url_template")
    fieldsets = (
        (None, {"fields": ("name", "description", "examples", "enabled")}),
        (
            "Request",
            {"fields": ("method", "url_template", "arguments_schema", "signing_secret", "headers")},
        ),
        (
            "Limits and answer",
            {"fields": ("timeout_seconds", "max_response_bytes", "response_fields")},
        ),
        (
            "Approval",
            {
                "fields": (
                    "approval",
                    "approval_amount_path",
                    "approval_threshold",
                    "approval_summary",
                )
            },
        ),
    )

    @admin.display(description="agents")
    def agent_names(self, obj: Action) -> str:
        return ", ".join(a.name for a in obj.agents.all()) or "none"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("agents")


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin):
    """MCP servers (streamable HTTP): agents call the tools on each one's allow-list."""

    form = McpServerForm
    list_display = ("name", "url", "enabled", "allowed", "checked_at", "last_error", "agent_names")
    list_filter = ("enabled",)
    search_fields = ("name", "url")
    actions = ("check_servers",)
    readonly_fields = ("listing", "checked_at", "last_error")
    fieldsets = (
        (None, {"fields": ("name", "url", "enabled")}),
        ("Connection", {"fields": ("headers", "timeout_seconds")}),
        ("Tools", {"fields": ("allowed_tools", "listing", "checked_at", "last_error")}),
    )

    @admin.display(description="allowed tools")
    def allowed(self, obj: McpServer) -> str:
        return ", ".join(map(str, obj.allowed_tools or [])) or "none"

    @admin.display(description="the server's tools (last check)")
    def listing(self, obj: McpServer) -> str:
        lines = [
            f"{t.get('name')}: {t.get('description') or '(no description)'}"
            for t in obj.tools or []
            if isinstance(t, dict)
        ]
        return "\n".join(lines) or "Not checked yet."

    @admin.display(description="agents")
    def agent_names(self, obj: McpServer) -> str:
        return ", ".join(a.name for a in obj.agents.all()) or "none"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("agents")

    @admin.action(description="Check the server and refresh its tool list")
    def check_servers(self, request, queryset) -> None:
        for server in queryset:
            result = mcp.mcp_server_check(server=server)
            self.message_user(
                request, result.message, messages.SUCCESS if result.ok else messages.ERROR
            )


@admin.register(ActionCall)
class ActionCallAdmin(admin.ModelAdmin):
    """Every call of an action or a tool outside an agent's permissions: a record."""

    list_display = (
        "created_at",
        "tool",
        "agent_slug",
        "status",
        "http_status",
        "duration_ms",
        "approval",
        "conversation_id",
    )
    list_filter = ("status", "tool", "agent_slug", "created_at")
    search_fields = ("tool", "conversation_id", "turn_id", "error")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Approval)
class ApprovalAdmin(RecordAdmin):
    """Every approval asked for: a record (staff decide in the inbox or the staff API)."""

    RUN_STATE_CHARS = 500

    list_display = (
        "summary",
        "tool",
        "by",
        "status",
        "created_at",
        "expires_at",
        "decided_by",
    )
    list_filter = ("status", "by")
    search_fields = ("summary", "tool", "conversation_id", "turn_id", "decided_by")
    date_hierarchy = "created_at"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "summary",
                    "tool",
                    "action",
                    "agent_slug",
                    "arguments",
                    "by",
                    "status",
                    "created_at",
                    "expires_at",
                    "decided_at",
                    "decided_by",
                    "conversation_id",
                    "turn_id",
                    "call_id",
                    "uuid",
                )
            },
        ),
        (
            "The paused run",
            {
                "classes": ("collapse",),
                "fields": ("start_agent", "tool_call_id", "run_state_start"),
            },
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("action")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "run_state"] + [
            "run_state_start"
        ]

    @admin.display(description="run state (its start)")
    def run_state_start(self, obj: Approval) -> str:
        return truncatechars(obj.run_state, self.RUN_STATE_CHARS)
