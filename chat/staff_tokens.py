"""Personal tokens for the staff API (docs/staff-api.md): made by `manage.py staff_token
USERNAME`, shown once, stored as their SHA-256 digest and a short prefix only.

A token is `sost_` and 32 random bytes (url-safe base64). Looking one up hashes what was
sent and finds the digest (an index lookup on a value the sender cannot choose), so the
stored digests are useless to someone who reads the database.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q
from django.utils import timezone

from . import inbox
from .models import StaffToken

TOKEN_PREFIX = "sost_"
TOKEN_BYTES = 32
TOKEN_MAX_CHARS = 200  # anything longer is not one of ours; not even hashed
PREFIX_CHARS = 12  # stored and shown in the admin to tell tokens apart
TOUCH_SECONDS = 60  # last_used_at is written at most once a minute per token


class StaffTokenError(ValueError):
    """A token that cannot be made or revoked; the message is plain words."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def staff_user_find(*, username: str) -> AbstractBaseUser:
    user = inbox.staff_user_by_ref(ref=username)
    if user is None:
        raise StaffTokenError(f"There is no user called {username!r}.")
    return user


def staff_token_create(*, user: AbstractBaseUser) -> tuple[str, StaffToken]:
    """A new token for an active member of staff: (the token, shown once; its row)."""
    name = user.get_username()
    if not user.is_active:
        raise StaffTokenError(f"{name} is not active; tokens are for active members of staff.")
    if not user.is_staff:
        raise StaffTokenError(
            f"{name} is not a member of staff (tick 'Staff status' on the user in the admin)."
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    row = StaffToken.objects.create(
        user=user, digest=token_digest(token), prefix=token[:PREFIX_CHARS]
    )
    return token, row


def staff_token_revoke(*, user: AbstractBaseUser) -> int:
    """Delete every token of the user; the number deleted."""
    deleted, _ = StaffToken.objects.filter(user=user).delete()
    return deleted


def staff_token_user(*, token: str, now: datetime | None = None) -> AbstractBaseUser | None:
    """The user a token belongs to (whatever their flags: the caller decides), or None.
    Marks the token used (last_used_at), at most once a minute."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > TOKEN_MAX_CHARS:
        return None
    row = StaffToken.objects.select_related("user").filter(digest=token_digest(token)).first()
    if row is None:
        return None
    now = now or timezone.now()
    if row.last_used_at is None or row.last_used_at <= now - timedelta(seconds=TOUCH_SECONDS):
        StaffToken.objects.filter(
            Q(last_used_at__isnull=True)
            | Q(last_used_at__lte=now - timedelta(seconds=TOUCH_SECONDS)),
            pk=row.pk,
        ).update(last_used_at=now)
    return row.user
