"""The staff API's privacy endpoints (docs/privacy.md, docs/staff-api.md): a site's user's
data exported as JSON, or erased. Superusers only for now: roles come later.

A router of its own, mounted on the staff API (`mount`, called where the URLs are put
together) so it inherits its authentication, rate limit and plain-word errors.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest
from ninja import NinjaAPI, Router
from ninja.errors import HttpError

from . import privacy, roles
from .staff_api import ERRORS, ErrorOut

ADMINS_ONLY = "Exporting and erasing a user's data needs the Admin role."

router = Router(tags=["privacy"])

PRIVACY_ERRORS = {**ERRORS, 400: ErrorOut, 404: ErrorOut, 409: ErrorOut}
USER_PATH = "/users/{site}/{path:user_id}/"


def mount(api: NinjaAPI) -> None:
    """Put the privacy endpoints under /privacy/ of the staff API."""
    api.add_router("/privacy/", router)


def _superuser(request: HttpRequest) -> AbstractBaseUser:
    """Admins only (chat/roles.py: the Admin group, or a superuser)."""
    user = request.auth
    if roles.role_of(user) != roles.Role.ADMIN:
        raise HttpError(403, ADMINS_ONLY)
    return user


def _refused(exc: privacy.PrivacyError) -> HttpError:
    if isinstance(exc, privacy.NotFound):
        return HttpError(404, str(exc))
    if isinstance(exc, privacy.Busy):
        return HttpError(409, str(exc))
    return HttpError(400, str(exc))


@router.get(USER_PATH, response={200: dict[str, Any], **PRIVACY_ERRORS}, summary="Export a user")
def user_export(request: HttpRequest, site: str, user_id: str) -> dict[str, Any]:
    """Everything stored about the site's user (the user id the site sends): conversations
    with messages, feedback, rating, contact email, page context, staff notes, shared
    context, action calls and their arguments, approvals and workflow runs. 404 when nothing
    is stored."""
    staff = _superuser(request)
    try:
        return privacy.user_data_export(site_key=site, user_id=user_id, staff=staff)
    except privacy.PrivacyError as exc:
        raise _refused(exc) from None


@router.delete(USER_PATH, response={200: dict[str, Any], **PRIVACY_ERRORS}, summary="Erase a user")
def user_erase(request: HttpRequest, site: str, user_id: str) -> dict[str, Any]:
    """Delete the site's user's conversations and every row about them; an erasure record
    without content stays (the id's SHA-256, the counts, who, when). 404 when nothing is
    stored, 409 while one of the conversations is being answered."""
    staff = _superuser(request)
    try:
        record = privacy.user_data_erase(
            site_key=site, user_id=user_id, by=staff.get_username(), staff=staff
        )
    except privacy.PrivacyError as exc:
        raise _refused(exc) from None
    return {
        "erased": record.counts,
        "record": {
            "id": record.pk,
            "user_id_sha256": record.user_id_sha256,
            "by": record.by,
            "at": record.created_at.isoformat(),
        },
    }
