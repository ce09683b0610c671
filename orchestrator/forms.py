import json

from django import forms

from .domain.enums import AgentRole
from .domain.tool_names import TOOL_CHOICES
from .knowledge import MAX_QUESTIONS, questions_problems
from .models import Action, ActionSecret, AgentProfile, KnowledgeArticle, McpServer, Workflow


class AgentProfileForm(forms.ModelForm):
    tools = forms.MultipleChoiceField(
        choices=TOOL_CHOICES, required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = AgentProfile
        fields = [
            "name",
            "slug",
            "role",
            "enabled",
            "instructions",
            "handoff_description",
            "tools",
            "handoffs",
            "actions",
            "knowledge_bases",
            "context_keys",
            "mcp_servers",
            "model_provider",
            "model_name",
        ]

    def clean(self):
        cleaned = super().clean()
        role = cleaned.get("role")
        enabled = cleaned.get("enabled")
        if role in (AgentRole.ORCHESTRATOR, AgentRole.FALLBACK) and enabled:
            clash = AgentProfile.objects.filter(role=role, enabled=True)
            if self.instance.pk:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                raise forms.ValidationError(
                    f"Another enabled agent already has the role “{role}”: disable it first "
                    "(the team has one orchestrator and one fallback)."
                )
        handoffs = cleaned.get("handoffs")
        if handoffs is not None and self.instance.pk and self.instance in handoffs:
            raise forms.ValidationError("An agent cannot hand off to itself.")
        return cleaned


ARTICLE_BODY_HELP = (
    "Markdown. Each ## heading starts a section; answers quote one section and link to it. "
    "Right under a heading you may list the questions that section answers, in your "
    "customers' words, so answers find it however it is asked: a line “Questions:” "
    f"followed by one “- question” per line (at most {MAX_QUESTIONS}), then a blank line. "
    "They are never shown on the help centre or in answers."
)


class KnowledgeArticleForm(forms.ModelForm):
    """An article as staff edit it: its `Questions:` blocks are checked when saved
    (docs/offline-model.md: "Questions a section answers")."""

    class Meta:
        model = KnowledgeArticle
        fields = ["agent", "title", "slug", "published", "tags", "body"]
        help_texts = {"body": ARTICLE_BODY_HELP}

    def clean_body(self):
        body = self.cleaned_data.get("body") or ""
        problems = questions_problems(body)
        if problems:
            raise forms.ValidationError(problems)
        return body


class IndentedJSONField(forms.JSONField):
    """A JSON textarea that shows its value indented, for people to edit."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2)


class WorkflowForm(forms.ModelForm):
    definition = IndentedJSONField(
        widget=forms.Textarea(attrs={"rows": 24, "cols": 100, "class": "vLargeTextField"}),
        help_text="Steps as JSON; see docs/workflows.md. Validated when saved.",
    )

    class Meta:
        model = Workflow
        fields = ["name", "slug", "description", "triggers", "enabled", "definition"]

    def clean_definition(self):
        from .domain.workflows import DefinitionError
        from .workflow_engine import workflow_definition_check

        definition = self.cleaned_data.get("definition")
        try:
            workflow_definition_check(definition)
        except DefinitionError as exc:
            raise forms.ValidationError(str(exc)) from None
        return definition


class ActionForm(forms.ModelForm):
    arguments_schema = IndentedJSONField(
        widget=forms.Textarea(attrs={"rows": 14, "cols": 90, "class": "vLargeTextField"}),
        help_text="JSON Schema of the arguments (an object); a `pattern` per argument lets the "
        "offline model find it in the user's words. See docs/actions.md.",
    )
    headers = IndentedJSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 90}),
        help_text='{"Header-Name": "secret name"}: the header carries that stored secret.',
    )
    response_fields = IndentedJSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 90}),
        help_text='The answer\'s fields the model may see, e.g. ["status", "amount"]. Empty: none.',
    )

    class Meta:
        model = Action
        fields = [
            "name",
            "description",
            "examples",
            "enabled",
            "method",
            "url_template",
            "arguments_schema",
            "signing_secret",
            "headers",
            "timeout_seconds",
            "max_response_bytes",
            "response_fields",
            "approval",
            "approval_amount_path",
            "approval_threshold",
            "approval_summary",
        ]

    def clean_headers(self):
        return self.cleaned_data.get("headers") or {}

    def clean_response_fields(self):
        return self.cleaned_data.get("response_fields") or []


class ActionSecretForm(forms.ModelForm):
    """The value is write-only: typed in, never shown again (blank keeps the stored one;
    blank on a new secret generates one, shown once)."""

    value = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Never shown again. Leave blank to keep the stored value (or, for a new "
        "secret, to generate one, shown once after saving).",
    )

    class Meta:
        model = ActionSecret
        fields = ["name", "note"]


class McpServerForm(forms.ModelForm):
    headers = IndentedJSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 90}),
        help_text='{"Header-Name": "secret name"}: the header carries that stored secret '
        '(Action secrets), e.g. {"Authorization": "shop_token"}.',
    )
    allowed_tools = IndentedJSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 90}),
        help_text='The tools agents may call, e.g. ["order_status"]. Empty: none.',
    )

    class Meta:
        model = McpServer
        fields = ["name", "url", "enabled", "headers", "timeout_seconds", "allowed_tools"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        listed = [t.get("name") for t in self.instance.tools or [] if isinstance(t, dict)]
        if listed:
            self.fields["allowed_tools"].help_text += " The server lists: " + ", ".join(
                str(n) for n in listed
            )
        else:
            self.fields[
                "allowed_tools"
            ].help_text += (
                " Save, then use “Check the server and refresh its tool list” to see its tools."
            )

    def clean_headers(self):
        return self.cleaned_data.get("headers") or {}

    def clean_allowed_tools(self):
        return self.cleaned_data.get("allowed_tools") or []
