"""Revocation reaches open sockets: a WebSocket is authorized once, in its handshake, and may stay
open for hours, so every process that holds sockets re-checks their tokens on its event loop.

One :class:`RevocationWatch` per process (the gateway's, the web tier's event hub) keeps which
tokens have open sockets; every :data:`RECHECK_S` seconds one query reads them all (a page session
is watched with the API token it signed in with), and the sockets of a token that was revoked or
has expired since are closed by their owner with 1008 (policy violation).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from core import tokens
from core.access import Principal
from core.db import session_scope

log = logging.getLogger("tingxie.revocation")

# Seconds between checks: how long a revoked or expired token's open socket may last.
RECHECK_S = 2.0


class RevocationWatch:
    def __init__(self, factory: sessionmaker[Session], every_s: float = RECHECK_S):
        self.factory = factory
        self.every_s = every_s
        self._by_token: dict[str, set["_Entry"]] = {}
        self._task: asyncio.Task | None = None

    @property
    def watched(self) -> int:
        return len(self._by_token)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="tingxie-revocation")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def watch(self, principal: Principal | None, on_revoked: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_revoked`` (on the loop, once) when the principal's token or session stops being
        valid; returns the function that stops watching (call it when the socket closes). Anonymous
        principals have nothing to revoke."""
        ids = tuple(dict.fromkeys(i for i in (principal.session_id, principal.token_id) if i)) if principal else ()
        if not ids:
            return lambda: None
        entry = _Entry(ids, on_revoked)
        for token_id in ids:
            self._by_token.setdefault(token_id, set()).add(entry)
        return lambda: self._forget(entry)

    def _forget(self, entry: "_Entry") -> None:
        for token_id in entry.ids:
            holders = self._by_token.get(token_id)
            if holders is not None:
                holders.discard(entry)
                if not holders:
                    del self._by_token[token_id]

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            if not self._by_token:
                continue
            try:
                dead = await asyncio.to_thread(self._invalid, set(self._by_token))
            except Exception:  # the database may blip: the next round checks again
                log.warning("could not re-check the tokens of open sockets", exc_info=True)
                continue
            for token_id in dead:
                for entry in tuple(self._by_token.get(token_id, ())):
                    self._forget(entry)
                    try:
                        entry.on_revoked()
                    except Exception:
                        log.exception("closing a socket of a revoked token failed")

    def _invalid(self, ids: set[str]) -> set[str]:
        with session_scope(self.factory) as session:
            return tokens.invalid(session, ids)


class _Entry:
    __slots__ = ("ids", "on_revoked")

    def __init__(self, ids: tuple[str, ...], on_revoked: Callable[[], None]):
        self.ids, self.on_revoked = ids, on_revoked
