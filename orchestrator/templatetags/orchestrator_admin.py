from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def open_alerts(context):
    """Open alerts, for the banner on every admin page (staff only)."""
    request = context.get("request")
    if request is None or not getattr(request.user, "is_staff", False):
        return []
    from orchestrator.models import Alert

    return list(Alert.objects.filter(cleared_at__isnull=True).select_related("rule")[:5])
