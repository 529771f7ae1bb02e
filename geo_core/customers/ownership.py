"""Account ownership history (管户关系): who managed a customer, for which org, from when to when, and why.

The history (customer_ownerships) is written only by a database trigger on customers (insert, and any
change of owner_user_id or org_id), so no code path can change an owner without leaving a trace. The
trigger takes the *reason* and a short *source* code from transaction-local settings that services set
before they change owners:

    with ownership_reason(session, "网格移交：张三 -> 李四", source="grid_handover"):
        customer.owner_user_id = new_owner
        session.flush()          # the UPDATE (and the trigger) must run inside the block

Without a reason the trigger records source 'create' or 'edit' and no reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from geo_core.customers.models import Customer
from geo_core.errors import NotFound
from geo_core.paging import valid_id

_SET = text("SELECT set_config('gm.ownership_reason', :reason, true), set_config('gm.ownership_source', :source, true)")


def set_ownership_reason(session: Session, reason: str | None, source: str | None = None) -> None:
    """Set (or clear with None) the reason the ownership trigger records, for the rest of the transaction."""
    session.execute(_SET, {"reason": (reason or "")[:200], "source": (source or "")[:32]})


@contextmanager
def ownership_reason(session: Session, reason: str | None, source: str | None = None) -> Iterator[Session]:
    """Owner changes flushed inside the block are recorded with this reason/source; cleared afterwards."""
    session.flush()  # pending changes made before the block keep their own (absent) reason
    set_ownership_reason(session, reason, source)
    try:
        yield session
        session.flush()
    except DBAPIError:
        raise  # the (sub)transaction is aborted: the setting is rolled back with it
    except BaseException:
        set_ownership_reason(session, None)  # a domain error may be caught and the transaction go on
        raise
    set_ownership_reason(session, None)


@dataclass(frozen=True)
class Ownership:
    id: int
    owner_user_id: int | None
    owner_name: str | None
    org_id: int | None
    org_name: str | None
    valid_from: datetime
    valid_to: datetime | None
    changed_by: int | None
    changed_by_name: str | None
    source: str | None
    reason: str | None


def list_ownerships(session: Session, customer_id: int) -> list[Ownership]:
    """The customer's ownership periods, newest first (404 when the customer is outside the caller's scope)."""
    if not valid_id(customer_id) or session.get(Customer, customer_id) is None:
        raise NotFound("客户不存在", code="CUSTOMER_NOT_FOUND")
    rows = session.execute(text("""
        SELECT o.id, o.owner_user_id, u.name, o.org_id, g.name, o.valid_from, o.valid_to, o.changed_by, cb.name,
               o.source, o.reason
        FROM customer_ownerships o
        LEFT JOIN users u ON u.id = o.owner_user_id
        LEFT JOIN orgs g ON g.id = o.org_id
        LEFT JOIN users cb ON cb.id = o.changed_by
        WHERE o.customer_id = :c ORDER BY o.valid_from DESC, o.id DESC"""), {"c": customer_id}).all()
    return [Ownership(*row) for row in rows]
