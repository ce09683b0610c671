from django import forms
from django.contrib import admin, messages
from django.db.models import Count, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from orchestrator import crypto_fields, workflow_engine
from orchestrator.admin_records import RecordAdmin
from orchestrator.models import ActionCall, Workflow, WorkflowRun

from . import audit, desk_views, guardrails, people, roles, search
from .models import (
    CannedReply,
    Conversation,
    ConversationEvent,
    ErasureRecord,
    Feedback,
    Holiday,
    Message,
    OpeningHours,
    Site,
    StaffAuditEntry,
    StaffNote,
    StaffToken,
    Turn,
    TurnEvent,
)
from .rendering import json_from_db, render_json, render_message


def _stored_json(model, pk: int, field: str) -> str | None:
    """A JSON field's stored text, read without Django decoding it: a value stored by an
    older server (nested 900 levels, a lone surrogate) would make the decoding raise."""
    row = model.objects.filter(pk=pk).values_list(Cast(field, TextField()), flat=True)
    stored = row.first()
    if isinstance(model._meta.get_field(field), crypto_fields.EncryptedJSONField):
        return crypto_fields.opened(stored, label=f"{model._meta.label}.{field}")
    return stored


class MessageWordsSearch:
    """The admin's search also finds rows by the words of their messages, through the
    blind index (chat.search): `search_messages_of` is the message's column naming the
    row (`pk` on messages, `conversation_id` on conversations)."""

    search_messages_of = "pk"

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        condition = search.search_condition(search_term)
        if condition is None:
            return found, may_have_duplicates
        ids = Message.objects.filter(condition).values(self.search_messages_of)
        return found | queryset.filter(pk__in=ids), may_have_duplicates


class StartWorkflowForm(forms.Form):
    workflow = forms.ModelChoiceField(queryset=Workflow.objects.filter(enabled=True))
    input = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=4000,
        help_text="What the workflow works on ({input} in its instructions).",
    )


class StaffReplyForm(forms.Form):
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80}), max_length=4000, strip=True
    )


class OpeningHoursInline(admin.TabularInline):
    """The team's week, in the site's time zone (none: open all the time)."""

    model = OpeningHours
    extra = 0


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 0


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    """Widget installations. The change page shows the snippet to paste (see the template)."""

    inlines = (OpeningHoursInline, HolidayInline)

    list_display = ("name", "key", "enabled", "require_verified", "origins")
    list_filter = ("enabled", "require_verified")
    search_fields = ("name", "key", "allowed_origins")
    fieldsets = (
        (None, {"fields": ("name", "key", "enabled")}),
        ("Where it may appear", {"fields": ("allowed_origins",)}),
        ("Identity verification", {"fields": ("require_verified", "identity_secret")}),
        (
            "Look and words",
            {
                "fields": (
                    "greeting",
                    "suggestions",
                    "accent_color",
                    "theme",
                    "position",
                    "language",
                    "translations",
                )
            },
        ),
        ("Off-topic messages", {"fields": ("off_topic", "off_topic_reply")}),
        ("Business hours", {"fields": ("time_zone",)}),
        (
            "Privacy",
            {"fields": ("retention_days", "redact_cards", "redact_emails", "redact_phones")},
        ),
        ("Attachments", {"fields": ("attachment_types", "attachment_max_mb")}),
        ("Who answers it", {"fields": ("staff",)}),
    )
    filter_horizontal = ("staff",)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "staff":  # members of staff only
            kwargs["queryset"] = db_field.remote_field.model.objects.filter(is_staff=True)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="allowed origins")
    def origins(self, obj: Site) -> str:
        return ", ".join(obj.origin_list) or "(this app only)"


class SiteScoped:
    """Rows of the sites the member of staff may see (Site.staff; chat.roles): a site
    naming its staff hides its conversations, their messages, turns, feedback, events
    and notes from everyone else but Admins. `site_path`: from the row to its Site."""

    site_path = "site"

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        return roles.visible_conversations(rows, request.user, site=self.site_path)


@admin.register(Conversation)
class ConversationAdmin(SiteScoped, MessageWordsSearch, admin.ModelAdmin):
    list_display = (
        "__str__",
        "site",
        "user_name",
        "user_email",
        "status",
        "owner",
        "active_agent",
        "message_count",
        "updated_at",
    )
    list_filter = ("status", "site", "active_agent", "created_at")
    actions = ("take_over", "resolve")
    search_fields = ("uuid", "user_id", "user_name", "user_email")
    search_messages_of = "conversation_id"  # and by the words of its messages
    date_hierarchy = "created_at"
    readonly_fields = (
        "uuid",
        "site",
        "active_agent",
        "user_id",
        "user_name",
        "user_email",
        "status",
        "owner",
        "csat_score",
        "csat_comment",
        "locale",
        "context",
        "created_at",
        "updated_at",
        "workflows",
        "transcript",
    )
    exclude = ("token_hash", "busy_until", "page_context")  # shown by `context`

    def get_urls(self):
        site = self.admin_site
        view = site.admin_view(self.start_workflow_view)
        reply = site.admin_view(self.staff_reply_view)
        return [
            path(
                "desk/",
                site.admin_view(lambda request: desk_views.desk_view(site, request)),
                name="chat_desk",
            ),
            path(
                "desk/series.json",
                site.admin_view(desk_views.desk_series_view),
                name="chat_desk_series",
            ),
            path("<int:pk>/start-workflow/", view, name="chat_conversation_start_workflow"),
            path("<int:pk>/reply/", reply, name="chat_conversation_reply"),
            *super().get_urls(),
        ]

    def _conversation_form(self, request, pk, form_class, act, *, title, intro, action):
        """A form about one conversation (staff only). `act(conversation, form)` returns
        where to go when it worked, or None after adding the form's error."""
        conversation = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_change_permission(request, conversation):
            return HttpResponseRedirect(reverse("admin:index"))
        form = form_class(request.POST or None)
        if request.method == "POST" and form.is_valid():
            target = act(conversation, form)
            if target:
                return HttpResponseRedirect(target)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{title} {conversation}",
            "opts": self.model._meta,
            "original": conversation,
            "form": form,
            "intro": intro,
            "action": action,
        }
        return TemplateResponse(request, "admin/chat/conversation_form.html", context)

    def staff_reply_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Staff answer the user themselves (e.g. while no model can)."""

        def reply(conversation, form):
            people.staff_reply(
                conversation=conversation, staff=request.user, text=form.cleaned_data["text"]
            )
            messages.success(request, "Your reply was sent.")
            return reverse("admin:chat_conversation_change", args=[conversation.pk])

        return self._conversation_form(
            request,
            pk,
            StaffReplyForm,
            reply,
            title="Reply as staff in",
            intro="The user sees your reply at once, marked as from the team. Messages "
            "still waiting for an answer count as answered, and the conversation becomes "
            "yours: no agent answers it until it is handed back.",
            action="Send",
        )

    def _each(self, request, queryset, act, done: str) -> None:
        """Run a people action on each chosen conversation; refusals in plain words."""
        count = 0
        for conversation in queryset:
            try:
                act(conversation)
                count += 1
            except people.PeopleError as exc:
                messages.warning(request, f"{conversation}: {exc}")
        if count:
            messages.success(request, f"{count} conversation(s) {done}.")

    @admin.action(description="Take over (no agent answers them)")
    def take_over(self, request, queryset) -> None:
        self._each(
            request,
            queryset,
            lambda c: people.staff_take_over(conversation=c, staff=request.user),
            "taken over",
        )

    @admin.action(description="Resolve")
    def resolve(self, request, queryset) -> None:
        self._each(
            request,
            queryset,
            lambda c: people.staff_resolve(conversation=c, staff=request.user),
            "resolved",
        )

    def start_workflow_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Staff start a workflow for this conversation; its answer is posted to it."""

        def start(conversation, form):
            try:
                run = workflow_engine.workflow_start(
                    workflow=form.cleaned_data["workflow"],
                    conversation_id=conversation.uuid,
                    input=form.cleaned_data["input"],
                    started_by="staff",
                )
            except workflow_engine.WorkflowError as exc:
                form.add_error(None, str(exc))
                return None
            messages.success(request, f"Started {run.workflow_slug}.")
            return reverse("admin:orchestrator_workflowrun_change", args=[run.pk])

        return self._conversation_form(
            request,
            pk,
            StartWorkflowForm,
            start,
            title="Start a workflow for",
            intro="The workflow runs on the workers; its final answer is posted to this "
            "conversation as an agent message, and every step is recorded in its run.",
            action="Start",
        )

    @admin.display(description="Workflows")
    def workflows(self, obj: Conversation) -> str:
        runs = WorkflowRun.objects.filter(conversation_id=obj.uuid).order_by("-created_at")[:20]
        start = format_html(
            '<a class="button" href="{}">Start a workflow</a> <a class="button" href="{}">'
            "Reply as staff</a>",
            reverse("admin:chat_conversation_start_workflow", args=[obj.pk]),
            reverse("admin:chat_conversation_reply", args=[obj.pk]),
        )
        rows = format_html_join(
            "",
            '<li><a href="{}">{}</a>: {} ({} of {} steps) · {}</li>',
            (
                (
                    reverse("admin:orchestrator_workflowrun_change", args=[r.pk]),
                    r.workflow_slug,
                    r.get_status_display(),
                    r.done_steps,
                    r.total_steps,
                    r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                )
                for r in runs
            ),
        )
        return format_html("<ul>{}</ul>{}", rows, start) if runs else start

    def get_queryset(self, request):
        # page_context is never decoded on these pages: `context` shows it safely.
        qs = super().get_queryset(request).defer("page_context")
        return qs.annotate(n_messages=Count("messages"))

    @admin.display(description="page context")
    def context(self, obj: Conversation) -> str:
        return render_json(_stored_json(Conversation, obj.pk, "page_context"))

    @admin.display(description="messages", ordering="n_messages")
    def message_count(self, obj: Conversation) -> int:
        return obj.n_messages

    @admin.display(description="Transcript")
    def transcript(self, obj: Conversation) -> str:
        entries = []
        for message in obj.messages.select_related("feedback", "attachment").order_by("id"):
            entries.append(
                (
                    message.created_at,
                    0,
                    message.id,
                    {
                        "message": message,
                        "html": render_message(message.text),
                        "feedback": getattr(message, "feedback", None),
                        "attachment": getattr(message, "attachment", None),
                    },
                )
            )
        events = (
            TurnEvent.objects.filter(turn__conversation=obj)
            .defer("data")
            .annotate(raw=Cast("data", TextField()))
            .order_by("id")
        )
        for event in events:
            data, shown = json_from_db(crypto_fields.opened(event.raw, label="chat.TurnEvent.data"))
            entry = {"event": event, "data": data if isinstance(data, dict) else {}, "raw": shown}
            entries.append((event.created_at, 1, event.id, entry))
        for call in ActionCall.objects.filter(conversation_id=obj.uuid).order_by("id"):
            entries.append((call.created_at, 2, call.id, {"call": call}))
        entries.sort(key=lambda e: (e[0], e[1], e[2]))
        html = render_to_string("admin/chat/transcript.html", {"entries": [e[3] for e in entries]})
        return mark_safe(html)  # the template escapes; message HTML is sanitised by nh3

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        conversation = self.get_object(request, object_id)
        if request.method == "GET" and conversation is not None and response.status_code == 200:
            audit.staff_did(
                staff=request.user, action=audit.Action.READ, conversation_id=conversation.uuid,
                where="admin",
            )  # fmt: skip
        return response

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(SiteScoped, MessageWordsSearch, admin.ModelAdmin):
    site_path = "conversation__site"
    list_display = ("created_at", "conversation", "role", "agent_name", "short_text", "status")
    list_filter = ("role", "status", "agent_slug")
    search_fields = ("conversation__uuid", "client_id")
    search_messages_of = "pk"  # and by the words of its text
    readonly_fields = [f.name for f in Message._meta.fields if f.name != "search_index"]
    exclude = ("search_index",)

    def get_queryset(self, request):
        return _conversation_without_context(super().get_queryset(request))

    @admin.display(description="text")
    def short_text(self, obj: Message) -> str:
        return obj.text[:80]

    def has_add_permission(self, request) -> bool:
        return False


def _conversation_without_context(qs):
    """Rows shown with their conversation, whose page_context is never decoded here."""
    return qs.select_related("conversation").defer("conversation__page_context")


class TurnEventInline(admin.TabularInline):
    model = TurnEvent
    extra = 0
    fields = ("created_at", "kind", "shown_data")
    readonly_fields = ("created_at", "kind", "shown_data")
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).defer("data")

    @admin.display(description="data")
    def shown_data(self, obj: TurnEvent) -> str:
        return render_json(_stored_json(TurnEvent, obj.pk, "data"))


@admin.register(Turn)
class TurnAdmin(SiteScoped, admin.ModelAdmin):
    site_path = "conversation__site"
    list_display = (
        "uuid",
        "conversation",
        "status",
        "agent_slug",
        "started_at",
        "finished_at",
        "error_code",
        "guardrail",
        "guardrail_kind",
        "false_positive",
    )
    list_filter = ("status", "guardrail", "false_positive", "agent_slug", "error_code")
    actions = ["mark_false_positive"]
    search_fields = ("uuid", "conversation__uuid", "error")
    readonly_fields = [f.name if f.name != "usage" else "shown_usage" for f in Turn._meta.fields]
    exclude = ("usage",)  # shown by `shown_usage`
    inlines = [TurnEventInline]

    def get_queryset(self, request):
        return _conversation_without_context(super().get_queryset(request)).defer("usage")

    @admin.display(description="usage")
    def shown_usage(self, obj: Turn) -> str:
        return render_json(_stored_json(Turn, obj.pk, "usage"))

    @admin.action(description="Mark as a false positive: the guardrail was wrong (retrains on it)")
    def mark_false_positive(self, request, queryset) -> None:
        marked = sum(
            guardrails.turn_mark_false_positive(turn_id=pk, user=request.user)
            for pk in queryset.values_list("pk", flat=True)
        )
        skipped = queryset.count() - marked
        text = (
            f"{marked} turn(s) marked as false positives; the guardrail retrains on their messages."
        )
        if skipped:
            text += f" {skipped} skipped (no guardrail stopped them, or already marked)."
        self.message_user(request, text, messages.SUCCESS if marked else messages.WARNING)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Feedback)
class FeedbackAdmin(SiteScoped, admin.ModelAdmin):
    site_path = "message__conversation__site"
    list_display = ("message", "value", "comment", "created_at")
    list_filter = ("value",)


@admin.register(ConversationEvent)
class ConversationEventAdmin(SiteScoped, admin.ModelAdmin):
    site_path = "conversation__site"
    """Every status and owner change (the record the people figures come from)."""

    list_display = ("created_at", "conversation", "from_status", "to_status", "source", "owner")
    list_filter = ("to_status", "source")
    list_select_related = ("conversation", "owner")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StaffNote)
class StaffNoteAdmin(SiteScoped, admin.ModelAdmin):
    site_path = "conversation__site"
    list_display = ("created_at", "conversation", "author", "text")
    list_select_related = ("conversation", "author")
    readonly_fields = ("conversation", "author", "created_at")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(CannedReply)
class CannedReplyAdmin(admin.ModelAdmin):
    """Saved answers the inbox's reply form inserts (staff edit them before sending)."""

    list_display = ("title", "short_text", "created_by", "created_at")
    search_fields = ("title", "text")
    fields = ("title", "text")
    list_select_related = ("created_by",)

    @admin.display(description="text")
    def short_text(self, obj: CannedReply) -> str:
        return obj.text if len(obj.text) <= 80 else obj.text[:79] + "…"

    def save_model(self, request, obj: CannedReply, form, change: bool) -> None:
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(StaffToken)
class StaffTokenAdmin(admin.ModelAdmin):
    """Personal tokens for the staff API, made by `manage.py staff_token USERNAME` (only
    their digest is stored, so none can be made or shown here). Delete one to revoke it."""

    list_display = ("user", "prefix", "created_at", "last_used_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "prefix")
    fields = ("user", "prefix", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ErasureRecord)
class ErasureRecordAdmin(RecordAdmin):
    """What each erasure of a user's data removed (docs/privacy.md): read only, no content."""

    deletable = False

    list_display = ("created_at", "site_key", "by", "user_id_sha256")
    list_filter = ("site_key",)
    search_fields = ("user_id_sha256",)
    readonly_fields = ("site", "site_key", "user_id_sha256", "counts", "by", "staff", "created_at")


@admin.register(StaffAuditEntry)
class StaffAuditEntryAdmin(RecordAdmin):
    """The staff audit log (chat/audit.py): append-only, read by Supervisors and Admins."""

    deletable = False

    list_display = ("at", "actor_name", "action", "conversation_id")
    list_filter = ("action",)
    search_fields = ("actor_name", "=conversation_id")
    date_hierarchy = "at"
    readonly_fields = ("at", "actor", "actor_name", "action", "conversation_id", "detail")
