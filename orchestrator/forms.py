import json

from django import forms

from .domain.enums import AgentRole
from .domain.tool_names import TOOL_CHOICES
from .models import AgentProfile, Workflow


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
