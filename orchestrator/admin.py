from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from . import selectors
from .forms import AgentProfileForm
from .models import (
    AgentProfile,
    AgentRun,
    ContextEntry,
    KnowledgeArticle,
    RoutingExample,
    RoutingSettings,
)


class RoutingExampleInline(admin.TabularInline):
    model = RoutingExample
    extra = 1


class KnowledgeArticleInline(admin.StackedInline):
    model = KnowledgeArticle
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
    filter_horizontal = ("handoffs",)
    inlines = [RoutingExampleInline, KnowledgeArticleInline]
    fieldsets = (
        (None, {"fields": ("name", "slug", "role", "enabled")}),
        ("Behaviour", {"fields": ("instructions", "handoff_description", "tools", "handoffs")}),
        ("Model", {"fields": ("model_provider", "model_name")}),
        ("Load and health", {"fields": ("degraded", "max_concurrency", "alternative")}),
    )

    def get_urls(self):
        view = self.admin_site.admin_view(self.try_routing_view)
        return [path("try-routing/", view, name="orchestrator_try_routing"), *super().get_urls()]

    def try_routing_view(self, request: HttpRequest) -> HttpResponse:
        """Type a message, see where routing would send it and how sure it is."""
        text = (request.GET.get("q") or "").strip()[:2000]
        active = request.GET.get("active") or None
        decision = None
        if text:
            decision = selectors.route_decide(text=text, active=active).as_dict()
        team = selectors.team_snapshot()
        context = {
            **self.admin_site.each_context(request),
            "title": "Try routing",
            "opts": self.model._meta,
            "q": text,
            "active": active or "",
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
    list_display = ("title", "agent", "tags", "updated_at")
    list_filter = ("agent",)
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

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ContextEntry)
class ContextEntryAdmin(admin.ModelAdmin):
    list_display = ("key", "conversation_id", "value", "updated_at")
    search_fields = ("key", "conversation_id")


@admin.register(RoutingSettings)
class RoutingSettingsAdmin(admin.ModelAdmin):
    list_display = ("__str__", "threshold", "when_unsure", "topic_change_margin", "updated_at")

    def has_add_permission(self, request) -> bool:
        return not RoutingSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
