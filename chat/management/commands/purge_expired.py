from django.core.management.base import BaseCommand

from chat import privacy


class Command(BaseCommand):
    help = (
        "Delete the conversations idle longer than their site's retention (Site: keep "
        "conversations for N days), with everything stored about them. Celery beat does this "
        "daily; this is for a cron job or by hand (docs/privacy.md)."
    )

    def handle(self, *args, **options) -> None:
        result = privacy.purge_expired()
        total = result["conversations"]
        if not total:
            self.stdout.write("No conversation is past its site's retention; nothing deleted.")
            return
        sites = ", ".join(f"{key}: {n}" for key, n in result["sites"].items())
        messages = result["counts"].get("messages", 0)
        self.stdout.write(
            f"Deleted {total} conversation(s) past their site's retention ({sites}), "
            f"with {messages} message(s) and everything else stored about them."
        )
