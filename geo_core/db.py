"""Engines, sessions, the declarative Base and the per-transaction data-scope context.

Every transaction opened by a session carries the session's `DbContext` into PostgreSQL as
transaction-local settings (`set_config(..., true)`): row-level security policies and audit
triggers read them. A session with no context sees nothing under RLS.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import DateTime, MetaData, create_engine, event, func, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


@dataclass(frozen=True)
class DbContext:
    """What PostgreSQL needs to know about the actor of a transaction."""

    user_id: int | None = None
    org_id: int | None = None
    scope_all: bool = False
    # lquery patterns over orgs.path: "n1.n4" (that org) or "n1.n4.*" (its subtree)
    lqueries: tuple[str, ...] = ()
    request_id: str | None = None
    client_ip: str | None = None
    # extra transaction-local settings (name, value), names from SETTINGS only: e.g. the tile server's timeout
    settings: tuple[tuple[str, str], ...] = ()

    def with_request(self, request_id: str | None, client_ip: str | None) -> DbContext:
        return replace(self, request_id=request_id, client_ip=client_ip)


NOBODY = DbContext()
SYSTEM = DbContext(scope_all=True)

_CTX_KEY = "gm_context"
SETTINGS = ("statement_timeout", "jit")  # the only settings a DbContext may carry
_SET_SQL = text(
    "SELECT set_config('gm.user_id', :user_id, true), set_config('gm.org_id', :org_id, true),"
    " set_config('gm.scope', :scope, true), set_config('gm.lqueries', :lqueries, true),"
    " set_config('gm.request_id', :request_id, true), set_config('gm.client_ip', :client_ip, true)"
)


def _context_params(ctx: DbContext) -> dict[str, str]:
    return {
        "user_id": "" if ctx.user_id is None else str(ctx.user_id),
        "org_id": "" if ctx.org_id is None else str(ctx.org_id),
        "scope": "all" if ctx.scope_all else "lqueries",
        "lqueries": "{" + ",".join(ctx.lqueries) + "}",
        "request_id": ctx.request_id or "",
        "client_ip": ctx.client_ip or "",
    }


def _set_sql(ctx: DbContext):  # noqa: ANN202
    """One statement setting the context and its extra settings (names whitelisted, values bound)."""
    if not ctx.settings:
        return _SET_SQL
    extra = []
    for i, (name, _) in enumerate(ctx.settings):
        if name not in SETTINGS:
            raise ValueError(f"setting not allowed in a DbContext: {name}")
        extra.append(f", set_config('{name}', :s{i}, true)")
    return text(_SET_SQL.text + "".join(extra))


def _params(ctx: DbContext) -> dict[str, str]:
    params = _context_params(ctx)
    params.update({f"s{i}": value for i, (_, value) in enumerate(ctx.settings)})
    return params


def set_context(session: Session, ctx: DbContext) -> None:
    """Bind `ctx` to the session: applied now (if a transaction is open) and on every new one."""
    session.info[_CTX_KEY] = ctx
    if session.in_transaction():
        session.execute(_set_sql(ctx), _params(ctx))


def adopt_context(session: Session, ctx: DbContext) -> None:
    """Bind `ctx` to the session without a statement: the caller has just applied it in the open transaction
    (`geo_core.auth.fast` does so in the same statement that loads the principal). New transactions apply it."""
    session.info[_CTX_KEY] = ctx


def get_context(session: Session) -> DbContext:
    return session.info.get(_CTX_KEY, NOBODY)


@event.listens_for(Session, "after_begin")
def _apply_context(session: Session, transaction, connection) -> None:  # noqa: ANN001
    ctx = session.info.get(_CTX_KEY)
    if ctx is not None:
        connection.execute(_set_sql(ctx), _params(ctx))


def make_engine(url: str, *, pool_size: int = 10, pre_ping: bool = True, **kwargs: object) -> Engine:
    """`pre_ping=False` saves a round trip per checkout; a connection lost meanwhile then fails its statement with
    `connection_invalidated` set, and SQLAlchemy invalidates the rest of the pool so the next checkout reconnects."""
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=20,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        future=True,
        **kwargs,
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextmanager
def transaction(factory: sessionmaker[Session], ctx: DbContext) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    set_context(session, ctx)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def elevated(session: Session, *, reason: str, actor_id: int | None = None) -> Iterator[Session]:
    """Temporarily see all rows (admin / batch work). The elevation itself is audited."""
    previous = get_context(session)
    ctx = replace(previous, scope_all=True, user_id=actor_id if actor_id is not None else previous.user_id)
    set_context(session, ctx)
    session.execute(
        text("SELECT gm_audit_event('elevate', 'session', NULL, jsonb_build_object('reason', CAST(:reason AS text)))"),
        {"reason": reason},
    )
    try:
        yield session
    finally:
        set_context(session, previous)
