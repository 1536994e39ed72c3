"""Request and response schemas. Requests forbid unknown fields (mass assignment → 422)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(max_length=1024)


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_at: str


class MembershipPublic(BaseModel):
    tenant: str
    role: str


class MePublic(BaseModel):
    id: str
    name: str
    kind: str
    memberships: list[MembershipPublic]


class AlertPublic(BaseModel):
    id: str
    version: str
    tenant: str
    status: str
    rule_id: str | None = None
    rule_name: str | None = None
    level: str | None = None
    tags: list[str] = Field(default_factory=list)
    count: int = 1
    first_seen: str | None = None
    last_seen: str | None = None
    entities: dict[str, Any] = Field(default_factory=dict)
    event_ids: list[str] = Field(default_factory=list)
    created_at: str | None = None


class AlertDetail(AlertPublic):
    events: list[dict[str, Any]] = Field(default_factory=list)


class AlertPage(BaseModel):
    items: list[AlertPublic]
    next_cursor: str | None = None


class EventPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


class Health(BaseModel):
    status: str
    store: str
    version: str
