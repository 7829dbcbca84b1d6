"""What the running application holds, and the request dependencies that hand it out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cadenya_server.config import Settings
from cadenya_server.kit.crypto import Keyring
from cadenya_server.kit.db import Database
from cadenya_server.kit.jwt_tokens import JwtIssuer
from cadenya_server.kit.pagination import Cursors


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    keyring: Keyring
    jwt: JwtIssuer
    cursors: Cursors

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        keyring = Keyring(settings.secret_key)
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            keyring=keyring,
            jwt=JwtIssuer(
                keyring=keyring,
                issuer=settings.issuer,
                audience=settings.audience,
                leeway_seconds=settings.jwt_leeway_seconds,
            ),
            cursors=Cursors(keyring),
        )


# async: trivial work need not hop to the thread pool as sync dependencies do.
async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's one transaction: committed when the handler returns, else rolled back.

    Async, so that the request waits for its turn (Admission) on the event loop.
    """
    runtime: Runtime = request.app.state.runtime
    write = request.method not in ("GET", "HEAD")
    async with runtime.db.request_transaction(write=write) as session:
        yield session


AppRuntime = Annotated[Runtime, Depends(get_runtime)]
# scope="function": commit before the response is sent, so a client that saw
# a success always reads its own write.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
