from django.contrib import admin

from .forms import AgentProfileForm
from .models import AgentProfile, AgentRun, ContextEntry, KnowledgeArticle, RoutingExample


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
    )

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
