"""Process context: settings plus the engine and session factory built from them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fleet.db import make_engine, make_sessionmaker
from fleet.settings import Settings

if TYPE_CHECKING:
    from fleet.broker.credentials import CredentialIssuer


@dataclass
class Context:
    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine)

    @cached_property
    def issuer(self) -> CredentialIssuer:
        from fleet.broker.credentials import make_issuer

        return make_issuer(self.settings)

    def close(self) -> None:
        if "issuer" in self.__dict__:
            self.issuer.close()
        if "engine" in self.__dict__:
            self.engine.dispose()
