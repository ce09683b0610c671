"""Seeds the app's own chat page's site ('demo'), so GET / only reads it."""

from django.db import migrations


def create_default_site(apps, schema_editor) -> None:
    from chat.services import site_ensure_default

    site_ensure_default(site_model=apps.get_model("chat", "Site"))


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0002_message_retry_at"),
    ]

    operations = [
        migrations.RunPython(create_default_site, migrations.RunPython.noop, elidable=False),
    ]
