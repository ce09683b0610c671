import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from chat import privacy


class Command(BaseCommand):
    help = (
        "A site's user's data (docs/privacy.md). `export` prints everything stored about the "
        "user as JSON (or writes it to --output); `erase` deletes it, leaving a record without "
        "content (asks first unless --yes)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["export", "erase"])
        parser.add_argument("--site", required=True, help="The site's key.")
        parser.add_argument("--user", required=True, help="The user id the site sends.")
        parser.add_argument("--output", help="export: write the JSON to this file.")
        parser.add_argument("--yes", action="store_true", help="erase: do not ask.")

    def handle(self, *args, **options) -> None:
        try:
            if options["action"] == "export":
                self._export(options)
            else:
                self._erase(options)
        except privacy.PrivacyError as exc:
            raise CommandError(str(exc)) from None

    def _export(self, options) -> None:
        data = privacy.user_data_export(site_key=options["site"], user_id=options["user"])
        text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
        if options["output"]:
            try:
                Path(options["output"]).write_text(text + "\n", encoding="utf-8")
            except OSError as exc:
                raise CommandError(
                    f"Could not write {options['output']}: {exc.strerror or exc}."
                ) from None
            n = len(data["conversations"])
            self.stdout.write(f"Wrote {n} conversation(s) of this user to {options['output']}.")
        else:
            self.stdout.write(text)

    def _erase(self, options) -> None:
        site, user = options["site"], options["user"]
        if not options["yes"]:
            data = privacy.user_data_export(site_key=site, user_id=user)  # NotFound first
            n = len(data["conversations"])
            if not sys.stdin.isatty():
                raise CommandError("Add --yes to erase without being asked.")
            answer = input(f"Erase {n} conversation(s) of user {user!r} on {site}? Type yes: ")
            if answer.strip().lower() != "yes":
                self.stdout.write("Nothing erased.")
                return
        record = privacy.user_data_erase(site_key=site, user_id=user, by="command")
        counts = record.counts
        self.stdout.write(
            f"Erased {counts.get('conversations', 0)} conversation(s) of this user on {site}, "
            f"with {counts.get('messages', 0)} message(s) and everything else stored about "
            f"them (erasure record {record.pk}, which keeps no content)."
        )
