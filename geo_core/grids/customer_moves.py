"""Moving account ownership (管户关系) of customers between managers, inside the caller's transaction.

Used by the grid hand-over (移交 with `include_customers`) and by the customer-level balancing. Rules:

- **Scope of a hand-over**: customers placed in the grid *or any of its descendants* (`grid_id` in the
  grid's subtree by `path`) whose owner (`customers.owner_user_id`) is the giver. A manager handing over a
  community also hands over the customers placed in its building groups.
- **Org follows the manager where it followed him**: a customer whose `org_id` was the giver's org gets
  the receiver's org (the bank's 管户 relationship decides the customer's 归属机构, as when a customer is
  created without an org: it takes its manager's org); a customer booked to another org (e.g. a branch-level
  customer the giver only looked after) keeps its org.
- Only customers visible to the caller move (row-level security on `customers`): the caller is a leader
  whose scope holds the grid and the receiver, so in practice all of them.
- The reason (and a source code: `grid_handover` or `grid_balancing`) goes to the ownership history
  (`customer_ownerships`, written by a trigger on `customers`) through the transaction-local settings
  `gm.ownership_reason` / `gm.ownership_source` (`geo_core.customers.ownership`), and the audit trigger on
  `customers` logs every changed row under the request's id. Nothing here commits: a later failure in the
  same transaction undoes the moves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core.customers.ownership import ownership_reason
from geo_core.errors import ValidationFailed

_MOVE_SQL = text("""
    UPDATE customers c
    SET owner_user_id = :to_user,
        org_id = CASE WHEN c.org_id = (SELECT org_id FROM users WHERE id = :from_user)
                      THEN (SELECT org_id FROM users WHERE id = :to_user) ELSE c.org_id END,
        updated_by = :actor, updated_at = now()
    WHERE c.owner_user_id = :from_user
      AND c.grid_id IN (SELECT id FROM grids WHERE path <@ (SELECT path FROM grids WHERE id = :grid))
""")


def move_grid_customers(session: Session, grid_id: int, from_user_id: int, to_user_id: int, *,
                        reason: str, actor_id: int | None) -> int:
    """Give the receiver every customer of the giver placed in the grid's subtree; returns how many moved."""
    with ownership_reason(session, reason, source="grid_handover"):
        result = session.execute(_MOVE_SQL, {"to_user": to_user_id, "from_user": from_user_id, "grid": grid_id,
                                             "actor": actor_id})
    return result.rowcount or 0


_REASSIGN_SQL = text("""
    UPDATE customers c
    SET owner_user_id = :to_user,
        org_id = CASE WHEN c.org_id = (SELECT org_id FROM users WHERE id = :from_user)
                      THEN (SELECT org_id FROM users WHERE id = :to_user) ELSE c.org_id END,
        updated_by = :actor, updated_at = now()
    WHERE c.id = ANY(:ids) AND c.owner_user_id = :from_user
""")


def reassign_customers(session: Session, moves: Iterable[tuple[int, int, int]], *, reason: str,
                       actor_id: int | None) -> int:
    """Apply (customer_id, from_user_id, to_user_id) changes, all or nothing.

    A customer that is not visible, or whose owner is no longer `from_user_id` (someone changed it since the
    preview), fails the whole batch with 422 on `moves`; the caller's transaction is then rolled back.
    """
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    count = 0
    for customer_id, from_user, to_user in moves:
        if from_user == to_user:
            raise ValidationFailed.on("moves", f"客户 {customer_id} 的移出与接收客户经理相同")
        groups[(from_user, to_user)].append(customer_id)
        count += 1
    seen = [c for ids in groups.values() for c in ids]
    if len(set(seen)) != len(seen):
        raise ValidationFailed.on("moves", "同一客户不能出现在多条调整中")
    changed = 0
    with ownership_reason(session, reason, source="grid_balancing"):
        for (from_user, to_user), ids in groups.items():
            changed += session.execute(_REASSIGN_SQL, {"ids": ids, "from_user": from_user, "to_user": to_user,
                                                       "actor": actor_id}).rowcount or 0
    if changed != count:
        raise ValidationFailed.on("moves", f"有 {count - changed} 个客户不存在、不在权限范围内或管户已变更，请重新测算")
    return changed
