from django.core.management.base import BaseCommand, CommandError

from chat import staff_tokens


class Command(BaseCommand):
    help = (
        "Make a personal token for the staff API (docs/staff-api.md) for an active member of "
        "staff, and print it (only its digest is stored: it is shown this once). With "
        "--revoke, delete every token of the user instead."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", help="The staff member's username.")
        parser.add_argument(
            "--revoke", action="store_true", help="Delete the user's tokens instead."
        )

    def handle(self, *args, username: str, revoke: bool, **options) -> None:
        try:
            user = staff_tokens.staff_user_find(username=username)
            if revoke:
                count = staff_tokens.staff_token_revoke(user=user)
                self.stdout.write(f"Revoked {count} token(s) of {user.get_username()}.")
                return
            token, row = staff_tokens.staff_token_create(user=user)
        except staff_tokens.StaffTokenError as exc:
            raise CommandError(str(exc)) from None
        # The token alone on stdout (TOKEN=$(manage.py staff_token sam)); the words on stderr.
        self.stdout.write(token)
        self.stderr.write(
            f"A new staff API token for {user.get_username()} (prefix {row.prefix}). It is shown "
            "only now: keep it secret. Send it as 'Authorization: Bearer <token>'; revoke "
            f"it with: manage.py staff_token {user.get_username()} --revoke"
        )
