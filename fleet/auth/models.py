"""People, their roles, their caseload of prisons, and their API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fleet.db import Base, UtcDateTime, utcnow

ROLES = ("estate-admin", "rollout-manager", "it-support", "facilities", "viewer")


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    caseload: Mapped[list[UserPrison]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @property
    def prison_codes(self) -> list[str]:
        return sorted(c.prison_code for c in self.caseload)


class UserPrison(Base):
    """One prison in a user's caseload; a user with none sees the whole estate."""

    __tablename__ = "user_prison"

    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    prison_code: Mapped[str] = mapped_column(ForeignKey("prison.code"), primary_key=True)


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    # Only a SHA-256 of the token is kept; the token itself is shown once.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
