"""The staff roles as Django groups (chat/roles.py): Viewer, Support, Supervisor, Admin,
with the admin permissions of each. Run again, it brings the groups' permissions up to
date and leaves their members as they are."""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

READ = {
    "chat": ["conversation", "message", "turn", "turnevent", "feedback", "conversationevent",
             "staffnote", "cannedreply", "openinghours", "holiday"],
    "orchestrator": ["agentrun", "actioncall", "approval", "workflowrun", "steprun", "alert",
                     "agenthealth"],
}  # fmt: skip
SUPERVISE = {"chat": ["cannedreply", "openinghours", "holiday"]}
AUDIT = {"chat": ["staffauditentry"], "auditlog": ["logentry"]}  # Supervisors read the logs
ROLE_APPS = ("chat", "orchestrator", "auditlog")


def _codenames(models: dict[str, list[str]], actions: tuple[str, ...]) -> set[tuple[str, str]]:
    return {(app, f"{a}_{m}") for app, names in models.items() for m in names for a in actions}


def roles(apps, schema_editor):
    for config in global_apps.get_app_configs():  # permissions exist only after migrate
        if config.label in ROLE_APPS:
            create_permissions(config, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    viewer = _codenames(READ, ("view",))
    support = viewer | {("chat", "add_staffnote")}
    supervisor = (
        support | _codenames(SUPERVISE, ("add", "change", "delete")) | _codenames(AUDIT, ("view",))
    )
    everything = supervisor | set(
        Permission.objects.filter(content_type__app_label__in=("chat", "orchestrator"))
        .exclude(codename__in=("change_staffauditentry", "delete_staffauditentry"))
        .values_list("content_type__app_label", "codename")
    )
    for name, wanted in (
        ("Viewer", viewer),
        ("Support", support),
        ("Supervisor", supervisor),
        ("Admin", everything),
    ):
        group, _ = Group.objects.get_or_create(name=name)
        perms = [
            p
            for p in Permission.objects.filter(
                content_type__app_label__in=ROLE_APPS
            ).select_related("content_type")
            if (p.content_type.app_label, p.codename) in wanted
        ]
        group.permissions.set(perms)


class Migration(migrations.Migration):
    dependencies = [
        ("orchestrator", "0006_approvals_and_mcp_servers"),
        ("chat", "0011_staff_audit"),
        ("auditlog", "0017_add_actor_email"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(roles, migrations.RunPython.noop)]
