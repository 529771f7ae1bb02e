"""Writing feed day directories for tests (format: docs/DATA_FEED.md) and cleaning up after committed imports."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sqlalchemy import text

from geo_core.customers import identifiers as ids
from geo_core.feed.files import COLUMNS


def person_id(n: int, born: str = "19800101") -> str:
    first17 = f"439901{born}{n % 1000:03d}"
    return first17 + ids.id_check_char(first17)


def uscc(n: int) -> str:
    body = f"91439901{n:09d}"
    return body + ids.uscc_check_char(body)


def write_csv(path: Path, header: tuple[str, ...], rows: list[dict], encoding: str = "utf-8") -> None:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header)
    for r in rows:
        writer.writerow([r.get(h, "") for h in header])
    path.write_bytes(buf.getvalue().encode(encoding))


def write_day(root: Path, day: str, customers: list[dict], accounts: list[dict], loans: list[dict],
              encoding: str = "utf-8") -> Path:
    directory = root / day
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in (("customers.csv", customers), ("accounts.csv", accounts), ("loans.csv", loans)):
        write_csv(directory / name, COLUMNS[name], rows, encoding)
    return directory


def staff(owner_engine, username: str) -> tuple[str, str, int, int]:
    """(org code, employee no., user id, org id) of a demo user."""
    with owner_engine.connect() as conn:
        return tuple(conn.execute(text(
            "SELECT o.code, u.employee_no, u.id, o.id FROM users u JOIN orgs o ON o.id = u.org_id "
            "WHERE u.username = :u"), {"u": username}).one())


def sample_day(owner_engine, prefix: str = "FT", n: int = 4) -> tuple[list[dict], list[dict], list[dict]]:
    """n customers (persons and a company) of am_430102_1_1, with deposits and loans."""
    org_code, emp, _, _ = staff(owner_engine, "am_430102_1_1")
    customers, accounts, loans = [], [], []
    for i in range(n):
        company = i == n - 1
        customers.append({"customer_no": f"{prefix}{i:06d}", "kind": "company" if company else "person",
                          "name": f"测试商户{i}" if company else f"测试客户{i}",
                          "uscc" if company else "id_number": uscc(700 + i) if company else person_id(700 + i),
                          "phone": f"1390000{i:04d}", "address": f"长沙市芙蓉区测试路{i}号", "org_code": org_code,
                          "manager_employee_no": emp, "credit_limit": "100000.00" if i % 2 else ""})
        accounts.append({"account_no": f"{prefix}A{i:06d}", "customer_no": f"{prefix}{i:06d}",
                         "product_code": "DEP_CURRENT", "account_type": "deposit", "balance": f"{10000 * (i + 1)}.50",
                         "currency": "CNY", "opened_on": "2020-01-01", "status": "active"})
        if i % 2:
            loans.append({"loan_no": f"{prefix}L{i:06d}", "customer_no": f"{prefix}{i:06d}",
                          "product_code": "LOAN_CONSUMER", "principal": "50000", "balance": "30000",
                          "due_date": "2026-12-01", "overdue_amount": "0", "overdue_days": "0", "status": "normal"})
    return customers, accounts, loans


def max_ids(owner_engine) -> dict[str, int]:
    with owner_engine.connect() as conn:
        return {t: conn.scalar(text(f"SELECT coalesce(max(id), 0) FROM {t}")) for t in (
            "customers", "feed_runs", "reminders", "credit_decisions", "customer_events")}


def cleanup(owner_engine, before: dict[str, int]) -> None:
    with owner_engine.begin() as conn:
        conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
        for table, last in before.items():
            conn.execute(text(f"DELETE FROM {table} WHERE id > :b"), {"b": last})
