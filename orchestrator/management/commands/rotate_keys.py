from collections import Counter

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orchestrator import crypto_fields, crypto_rotation

OUTCOMES = (
    ("rotated", "re-encrypted with the first key"),
    ("encrypted", "stored in clear before, encrypted now"),
    ("current", "already on the first key"),
    ("unreadable", "opened by no configured key, left as they are"),
)


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted column (messages, notes, comments, context values, ...) "
        "with the first key of SUPERORCH_FIELD_KEYS, in batches; safe to run again. "
        "Rotation: put a new key first, run this, then drop the old key (docs/privacy.md)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=crypto_rotation.BATCH_SIZE,
            help=f"Rows read and written per transaction (default {crypto_rotation.BATCH_SIZE}).",
        )
        parser.add_argument(
            "--new-key",
            action="store_true",
            help="Only print a new Fernet key to put first in SUPERORCH_FIELD_KEYS.",
        )
        parser.add_argument(
            "--derived-key",
            action="store_true",
            help="Only print the key derived from SECRET_KEY (what a database written "
            "without SUPERORCH_FIELD_KEYS is encrypted with), to list it second.",
        )

    def handle(self, *args, **options) -> None:
        if options["new_key"]:
            self.stdout.write(Fernet.generate_key().decode())
            return
        if options["derived_key"]:
            self.stdout.write(crypto_fields.derived_key(settings.SECRET_KEY))
            return
        if not 1 <= options["batch_size"] <= 100_000:
            raise CommandError("The batch size must be between 1 and 100000.")
        keys = crypto_fields.configured_keys()
        results = crypto_rotation.reseal_all(
            crypto_rotation.encrypted_columns(), batch_size=options["batch_size"]
        )
        total: Counter = Counter()
        for label, counts in results.items():
            total.update(counts)
            if counts:
                shown = ", ".join(f"{counts[o]} {o}" for o, _ in OUTCOMES if counts[o])
                self.stdout.write(f"{label}: {shown}")
        self.stdout.write(
            f"{sum(total.values())} value(s) in {len(results)} column(s), with "
            f"{len(keys)} key(s) configured:"
        )
        for outcome, words in OUTCOMES:
            self.stdout.write(f"  {total[outcome]} {words}")
        if total["unreadable"]:
            raise CommandError(
                f"{total['unreadable']} value(s) could not be decrypted with any configured "
                "key (their ids are in the log): keep the old key until they are dealt with."
            )
