"""People, for admins: list, enable, disable, issue a one-time password reset code.

An agency's admin sees and manages only people whose every membership lies in their agencies;
anyone else answers 404, like any object of another agency.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep, TenantScope
from soc_api.errors import ApiProblem
from soc_api.schemas import MembershipPublic, ResetIssued, UserList, UserPublic
from soc_api.services import accounts
from soc_core.events import format_timestamp
from soc_core.store import Doc

router = APIRouter(prefix="/api/users", tags=["users"])


def user_public(doc: Doc) -> UserPublic:
    body = doc.body
    return UserPublic(
        username=body["username"],
        display_name=body.get("display_name") or body["username"],
        disabled=bool(body.get("disabled")),
        memberships=[MembershipPublic(tenant=m["tenant"], role=m["role"]) for m in body.get("memberships", [])],
        totp_enrolled=bool(body.get("totp_secret")),
        must_change_password=bool(body.get("must_change_password")),
        created_at=body.get("created_at"),
    )


@router.get("", response_model=UserList)
def list_users(store: StoreDep, scope: TenantScope) -> UserList:
    return UserList(items=[user_public(doc) for doc in accounts.list_users(store, scope)])


@router.post("/{username}/disable", response_model=UserPublic)
def disable(username: str, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal) -> UserPublic:
    """Their sessions end and their API keys stop working at once."""
    doc = accounts.managed_user(store, username, scope)
    if doc.id == principal.id:
        raise ApiProblem(400, "Bad request", "you cannot disable yourself; ask another admin")
    accounts.disable_user(store, doc.id, actor=principal.id)
    return user_public(store.get_doc("users", doc.id))


@router.post("/{username}/enable", response_model=UserPublic)
def enable(username: str, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal) -> UserPublic:
    doc = accounts.managed_user(store, username, scope)
    accounts.enable_user(store, doc.id, actor=principal.id)
    return user_public(store.get_doc("users", doc.id))


@router.post("/{username}/reset", response_model=ResetIssued)
def reset(
    username: str,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> ResetIssued:
    """A one-time code (shown once, valid ``auth.reset_code_minutes``) with which the person sets
    a new password at ``POST /api/auth/reset``; their sessions end now."""
    doc = accounts.managed_user(store, username, scope)
    code, expires = accounts.issue_reset(
        store, doc.id, lifetime=timedelta(minutes=settings.auth.reset_code_minutes), actor=principal.id
    )
    return ResetIssued(username=doc.body["username"], code=code, expires_at=format_timestamp(expires))
