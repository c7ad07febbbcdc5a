"""When each person last asked for all their web sign-ins to end."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base, UtcDateTime


class SessionRevocation(Base):
    """Web sessions of this user issued before `revoked_at` are no longer accepted."""

    __tablename__ = "web_session_revocation"

    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UtcDateTime)
