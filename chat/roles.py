"""Staff roles (docs/security.md, "Staff roles"): who on the support team may do what.

Four roles, each a Django group (created by a migration, with its admin permissions),
each one able to do what the one before it does and more:

- **Viewer**: reads conversations (the inbox, the staff API, the admin's transcripts)
  and the dashboard.
- **Support**: also takes conversations over, replies, hands back, resolves, adds notes,
  and decides approvals up to SUPERORCH_SUPPORT_APPROVAL_LIMIT (an approval whose
  amount cannot be read counts as above it).
- **Supervisor**: also assigns conversations, edits canned replies and business hours,
  and decides approvals of any amount.
- **Admin**: also the registry (agents, routing, knowledge, workflows), actions, their
  secrets and MCP servers, sites and retention; a superuser is an Admin.

Per site: a site may name its staff (Site.staff); then only they, and Admins, see its
conversations (sites_hidden_from, visible_conversations), everywhere staff read them.

A member of staff in none of the groups has SUPERORCH_DEFAULT_STAFF_ROLE (Support unless
set; "viewer" for least privilege). The actions are checked in the services themselves
(chat.people, chat.staff_approvals), so the inbox and the staff API refuse alike, in
plain words; the admin follows the groups' model permissions.
"""

from __future__ import annotations

from decimal import Decimal
from enum import IntEnum, StrEnum

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Count, QuerySet

from .models import Site


class Role(IntEnum):
    VIEWER = 1
    SUPPORT = 2
    SUPERVISOR = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.capitalize()


GROUPS = {role.label: role for role in Role}  # group name -> role


class Can(StrEnum):
    """What a member of staff does; each needs a role (NEEDS)."""

    READ = "read conversations"
    TAKE_OVER = "take conversations over"
    REPLY = "reply to users"
    HAND_BACK = "hand conversations back to the agents"
    RESOLVE = "resolve conversations"
    NOTE = "add notes"
    APPROVE = "decide approvals"
    APPROVE_ANY = "decide approvals of any amount"
    ASSIGN = "assign conversations"
    CANNED = "edit canned replies"
    HOURS = "edit business hours"
    REGISTRY = "change the agents, actions and sites"


NEEDS: dict[Can, Role] = {
    Can.READ: Role.VIEWER,
    Can.TAKE_OVER: Role.SUPPORT,
    Can.REPLY: Role.SUPPORT,
    Can.HAND_BACK: Role.SUPPORT,
    Can.RESOLVE: Role.SUPPORT,
    Can.NOTE: Role.SUPPORT,
    Can.APPROVE: Role.SUPPORT,
    Can.APPROVE_ANY: Role.SUPERVISOR,
    Can.ASSIGN: Role.SUPERVISOR,
    Can.CANNED: Role.SUPERVISOR,
    Can.HOURS: Role.SUPERVISOR,
    Can.REGISTRY: Role.ADMIN,
}


class RoleError(Exception):
    """A member of staff whose role does not allow it: plain words (403 in the staff API,
    an error message in the inbox)."""


def role_of(user: AbstractBaseUser) -> Role | None:
    """The user's role: None for anyone who is not active staff."""
    if not (getattr(user, "is_active", False) and getattr(user, "is_staff", False)):
        return None
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    cached = getattr(user, "_superorch_role", None)
    if cached is not None:
        return cached
    names = user.groups.values_list("name", flat=True)
    roles = [GROUPS[n] for n in names if n in GROUPS]
    default = str(settings.SUPERORCH_DEFAULT_STAFF_ROLE).strip().capitalize()
    role = max(roles) if roles else GROUPS.get(default, Role.SUPPORT)
    user._superorch_role = role  # per request: the user object lives as long
    return role


def can(user: AbstractBaseUser, what: Can) -> bool:
    role = role_of(user)
    return role is not None and role >= NEEDS[what]


def require(user: AbstractBaseUser, what: Can) -> None:
    """Refuse, in plain words, what the user's role does not allow."""
    if can(user, what):
        return
    role = role_of(user)
    needed = NEEDS[what]
    have = f"Your role ({role.label})" if role else "Your account"
    raise RoleError(f"{have} cannot {what}: that needs the {needed.label} role or above.")


def approval_limit() -> Decimal:
    return Decimal(str(settings.SUPERORCH_SUPPORT_APPROVAL_LIMIT))


def require_approval(user: AbstractBaseUser, amount: Decimal | None) -> None:
    """Support decides approvals up to the limit; Supervisors and Admins any."""
    require(user, Can.APPROVE)
    if can(user, Can.APPROVE_ANY):
        return
    if amount is None or amount > approval_limit():
        raise RoleError(
            f"Support decides approvals up to {approval_limit():.2f}; this one needs a Supervisor."
        )


def sites_hidden_from(user: AbstractBaseUser) -> QuerySet[Site] | None:
    """The sites whose conversations the user may not see: those naming their staff
    without the user. None when nothing is hidden (an Admin sees every site). A queryset,
    so that filtering by it is a subquery of the caller's one statement."""
    if role_of(user) == Role.ADMIN:
        return None
    return (
        Site.objects.alias(n_staff=Count("staff"))
        .filter(n_staff__gt=0)
        .exclude(pk__in=Site.staff.through.objects.filter(user_id=user.pk).values("site_id"))
    )


def visible_conversations(rows: QuerySet, user: AbstractBaseUser, *, site: str = "site"):
    """`rows` without those of sites hidden from the user (`site`: the path from the
    rows to their Site, e.g. "conversation__site")."""
    hidden = sites_hidden_from(user)
    if hidden is None:
        return rows
    return rows.exclude(**{f"{site}__in": hidden.values("pk")})


def sees_site(user: AbstractBaseUser, site_id: int) -> bool:
    hidden = sites_hidden_from(user)
    return hidden is None or not hidden.filter(pk=site_id).exists()
