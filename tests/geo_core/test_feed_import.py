"""Daily feed import against the real database: idempotent re-runs, later days, GBK files, bad rows writing
nothing, matching potential customers by blind index, holdings columns and balance snapshots."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from geo_core import crypto
from jobs.feed import run_feed_import
from tests.feed_helpers import cleanup, max_ids, person_id, sample_day, staff, write_day


@pytest.fixture()
def fresh(owner_engine):
    before = max_ids(owner_engine)
    yield before
    cleanup(owner_engine, before)


def state(owner_engine, prefix: str) -> list[tuple]:
    """Everything the feed maintains for the customers numbered `prefix...`, in a comparable form."""
    with owner_engine.connect() as conn:
        customers = conn.execute(text(
            "SELECT customer_no, name, category::text, deposit_balance, loan_balance, credit_limit, overdue_amount, "
            "products, holdings_as_of, phone_enc, id_number_enc, updated_at FROM customers "
            "WHERE customer_no LIKE :p ORDER BY customer_no"), {"p": prefix + "%"}).all()
        accounts = conn.execute(text(
            "SELECT a.account_no, a.balance, a.status, a.as_of, a.updated_at FROM customer_accounts a "
            "JOIN customers c ON c.id = a.customer_id WHERE c.customer_no LIKE :p ORDER BY 1"),
            {"p": prefix + "%"}).all()
        loans = conn.execute(text(
            "SELECT l.loan_no, l.balance, l.due_date, l.updated_at FROM customer_loans l "
            "JOIN customers c ON c.id = l.customer_id WHERE c.customer_no LIKE :p ORDER BY 1"),
            {"p": prefix + "%"}).all()
        snaps = conn.execute(text(
            "SELECT c.customer_no, s.day, s.deposit_total, s.loan_total FROM balance_snapshots s "
            "JOIN customers c ON c.id = s.customer_id WHERE c.customer_no LIKE :p ORDER BY 1, 2"),
            {"p": prefix + "%"}).all()
    return [tuple(customers), tuple(accounts), tuple(loans), tuple(snaps)]


def audit_rows(owner_engine, since_id: int) -> list[tuple]:
    with owner_engine.connect() as conn:
        return conn.execute(text(
            "SELECT entity, action FROM audit_log WHERE id > :i AND entity IN ('customers', 'customer_accounts', "
            "'customer_loans', 'balance_snapshots') ORDER BY id"), {"i": since_id}).all()


def last_audit_id(owner_engine) -> int:
    with owner_engine.connect() as conn:
        return conn.scalar(text("SELECT coalesce(max(id), 0) FROM audit_log"))


def test_import_creates_formal_customers_with_holdings(fresh, owner_engine, tmp_path, settings):
    customers, accounts, loans = sample_day(owner_engine, "FA")
    result = run_feed_import(str(write_day(tmp_path, "20261124", customers, accounts, loans)))
    assert result["status"] == "done"
    assert result["counts"]["customers"] == {"inserted": 4, "updated": 0, "unchanged": 0}
    assert result["counts"]["customer_accounts"] == {"inserted": 4, "updated": 0, "unchanged": 0, "deleted": 0}
    assert result["counts"]["customer_loans"]["inserted"] == 2
    _, _, owner_id, org_id = staff(owner_engine, "am_430102_1_1")
    with owner_engine.connect() as conn:
        row = conn.execute(text(
            "SELECT category::text, owner_user_id, org_id, deposit_balance, loan_balance, credit_limit, products, "
            "holdings_as_of::text, id_number_bidx, id_number_mask, birth_date::text, to_jsonb(c)::text "
            "FROM customers c WHERE customer_no = 'FA000001'")).one()
        assert row[:8] == ("formal", owner_id, org_id, 20000.50, 30000, 100000, ["DEP_CURRENT", "LOAN_CONSUMER"],
                           "2026-11-24")
        assert row[8] == crypto.blind_index(person_id(701), settings.blind_index_key, "id_number")
        assert row[9].startswith("439***") and row[10] == "1980-01-01"
        assert person_id(701) not in row[11]  # encrypted at rest
        enc = conn.execute(text("SELECT id_number_enc, phone_enc FROM customers WHERE customer_no = 'FA000001'")).one()
        assert crypto.sm4_decrypt(enc[0], settings.sm4_key, aad=b"id_number") == person_id(701)
        assert crypto.sm4_decrypt(enc[1], settings.sm4_key, aad=b"phone") == "13900000001"
        run = conn.execute(text("SELECT status::text, files, checksum FROM feed_runs WHERE id = :i"),
                           {"i": result["run_id"]}).one()
    assert run[0] == "done" and run[1]["customers.csv"]["rows"] == 4 and len(run[2]) == 64


def test_same_day_again_changes_nothing(fresh, owner_engine, tmp_path):
    customers, accounts, loans = sample_day(owner_engine, "FB")
    directory = str(write_day(tmp_path, "2026-11-24", customers, accounts, loans))
    first = run_feed_import(directory)
    before, mark = state(owner_engine, "FB"), last_audit_id(owner_engine)
    again = run_feed_import(directory)  # same checksums: recognised, nothing to do
    assert again["status"] == "unchanged" and again["run_id"] == first["run_id"]
    forced = run_feed_import(directory, force=True)  # compared row by row: every row unchanged
    assert forced["status"] == "done" and forced["run_id"] != first["run_id"]
    assert forced["counts"]["customers"] == {"inserted": 0, "updated": 0, "unchanged": 4}
    assert forced["counts"]["customer_accounts"] == {"inserted": 0, "updated": 0, "unchanged": 4, "deleted": 0}
    assert forced["counts"]["balance_snapshots"] == {"inserted": 0, "updated": 0, "unchanged": 4}
    assert state(owner_engine, "FB") == before  # identical, down to ciphertext and updated_at
    assert audit_rows(owner_engine, mark) == []  # and the audit log saw no row writes


def test_a_later_day_updates_and_removes(fresh, owner_engine, tmp_path):
    customers, accounts, loans = sample_day(owner_engine, "FC")
    run_feed_import(str(write_day(tmp_path, "20261124", customers, accounts, loans)))
    mark = last_audit_id(owner_engine)
    accounts[0]["balance"] = "99999.00"
    loans[0]["status"] = "settled"
    loans[0]["balance"] = "0"
    del accounts[2]  # closed and gone from the snapshot
    customers[1]["phone"] = "13900009999"
    result = run_feed_import(str(write_day(tmp_path, "20261125", customers, accounts, loans)))
    assert result["counts"]["customer_accounts"] == {"inserted": 0, "updated": 1, "unchanged": 2, "deleted": 1}
    assert result["counts"]["customer_loans"] == {"inserted": 0, "updated": 1, "unchanged": 1, "deleted": 0}
    assert result["counts"]["customers"]["updated"] == 3  # deposits of 0 and 2, phone and loan of 1
    assert result["counts"]["balance_snapshots"]["inserted"] == 4
    with owner_engine.connect() as conn:
        got = dict(conn.execute(text(
            "SELECT customer_no, (deposit_balance, loan_balance, products, holdings_as_of::text, phone_mask)::text "
            "FROM customers WHERE customer_no LIKE 'FC%'")).all())
    assert got["FC000000"] == '(99999.00,0.00,{DEP_CURRENT},2026-11-25,139****0000)'
    assert got["FC000001"] == '(20000.50,0.00,{DEP_CURRENT},2026-11-25,139****9999)'
    with owner_engine.connect() as conn:
        phone = conn.scalar(text("SELECT phone_enc FROM customers WHERE customer_no = 'FC000001'"))
    assert crypto.sm4_decrypt(phone, os.environ["GM_SM4_KEY"], aad=b"phone") == "13900009999"
    assert got["FC000003"] == '(40000.50,30000.00,"{DEP_CURRENT,LOAN_CONSUMER}",2026-11-24,139****0003)'
    actions = audit_rows(owner_engine, mark)
    assert ("customer_accounts", "delete") in actions and actions.count(("customers", "update")) == 3


def test_gbk_files_are_detected(fresh, owner_engine, tmp_path):
    customers, accounts, loans = sample_day(owner_engine, "FG", n=2)
    customers[0]["name"] = "湘江副食店张三"
    result = run_feed_import(str(write_day(tmp_path, "20261124", customers, accounts, loans, encoding="gbk")))
    assert result["status"] == "done"
    with owner_engine.connect() as conn:
        assert conn.scalar(text("SELECT name FROM customers WHERE customer_no = 'FG000000'")) == "湘江副食店张三"
        files = conn.scalar(text("SELECT files FROM feed_runs WHERE id = :i"), {"i": result["run_id"]})
    assert files["customers.csv"]["encoding"] == "gbk"


def test_bad_rows_write_nothing_and_are_reported(fresh, owner_engine, tmp_path):
    customers, accounts, loans = sample_day(owner_engine, "FD")
    customers[1]["id_number"] = customers[1]["id_number"][:-1] + "0"  # wrong check digit (unless it was 0)
    if customers[1]["id_number"] == person_id(701):
        customers[1]["id_number"] = customers[1]["id_number"][:-1] + "1"
    customers[2]["org_code"] = "NOPE"
    accounts[0]["balance"] = "abc"
    loans[0]["customer_no"] = "UNKNOWN"
    mark = last_audit_id(owner_engine)
    with pytest.raises(Exception) as caught:
        run_feed_import(str(write_day(tmp_path, "20261124", customers, accounts, loans)))
    errors = caught.value.errors
    assert {(e["file"], e["line"], e["field"]) for e in errors} >= {
        ("customers.csv", 3, "id_number"), ("accounts.csv", 2, "balance"), ("loans.csv", 2, "customer_no")}
    assert state(owner_engine, "FD") == [(), (), (), ()]
    assert audit_rows(owner_engine, mark) == []
    with owner_engine.connect() as conn:
        run = conn.execute(text("SELECT status::text, errors FROM feed_runs ORDER BY id DESC LIMIT 1")).one()
    assert run[0] == "failed" and any(e["field"] == "balance" for e in run[1])
    # the unknown org is found once the rows themselves are valid
    customers[1]["id_number"] = person_id(701)
    accounts[0]["balance"] = "1"
    loans[0]["customer_no"] = customers[1]["customer_no"]
    with pytest.raises(Exception) as caught:
        run_feed_import(str(write_day(tmp_path, "20261124", customers, accounts, loans)))
    assert [(e["line"], e["field"]) for e in caught.value.errors] == [(4, "org_code")]
    assert state(owner_engine, "FD") == [(), (), (), ()]


def test_potential_customer_becomes_formal_by_blind_index(fresh, owner_engine, tmp_path, settings):
    customers, accounts, loans = sample_day(owner_engine, "FE", n=2)
    with owner_engine.begin() as conn:  # committed, as the job runs in its own transaction
        potential = conn.scalar(text(
            "INSERT INTO customers (kind, category, name, id_number_bidx, org_id) "
            "SELECT 'person', 'potential', '潜在客户', :b, org_id FROM users WHERE username = 'am_430102_1_1' "
            "RETURNING id"),
            {"b": crypto.blind_index(customers[0]["id_number"], settings.blind_index_key, "id_number")})
    result = run_feed_import(str(write_day(tmp_path, "20261124", customers, accounts, loans)))
    assert result["counts"]["customers"] == {"inserted": 1, "updated": 1, "unchanged": 0}
    with owner_engine.connect() as conn:
        row = conn.execute(text("SELECT customer_no, category::text, name, id_number_mask FROM customers "
                                "WHERE id = :i"), {"i": potential}).one()
    assert tuple(row[:3]) == ("FE000000", "formal", "测试客户0") and row[3].startswith("439***")
    with owner_engine.connect() as conn:  # the potential customer had no ciphertext: the feed supplies it
        enc = conn.scalar(text("SELECT id_number_enc FROM customers WHERE id = :i"), {"i": potential})
    assert crypto.sm4_decrypt(enc, settings.sm4_key, aad=b"id_number") == customers[0]["id_number"]


def test_cli_feed_import(fresh, owner_engine, tmp_path):
    from click.testing import CliRunner

    from api.cli import main

    customers, accounts, loans = sample_day(owner_engine, "FK", n=2)
    directory = write_day(tmp_path, "20261124", customers, accounts, loans)
    result = CliRunner().invoke(main, ["feed", "import", str(directory)])
    assert result.exit_code == 0, result.output
    assert "done" in result.output and "'inserted': 2" in result.output
    again = CliRunner().invoke(main, ["feed", "import", str(directory)])
    assert again.exit_code == 0 and "unchanged" in again.output
    accounts[1]["status"] = "open"
    bad = write_day(tmp_path, "20261125", customers, accounts, loans)
    failed = CliRunner().invoke(main, ["feed", "import", str(bad)])
    assert failed.exit_code == 1 and "accounts.csv:3 status" in failed.output


def test_demo_feed_state_matches_the_holdings(owner_engine):
    """The demo seed's accounts and loans add up to the holdings columns, as the feed would have made them."""
    with owner_engine.connect() as conn:
        mismatched = conn.scalar(text("""
            SELECT count(*) FROM customers c
            LEFT JOIN (SELECT customer_id, sum(balance) AS dep FROM customer_accounts
                       WHERE account_type = 'deposit' AND status <> 'closed' GROUP BY 1) a ON a.customer_id = c.id
            LEFT JOIN (SELECT customer_id, sum(balance) AS bal, sum(overdue_amount) AS od FROM customer_loans
                       WHERE status <> 'settled' GROUP BY 1) l ON l.customer_id = c.id
            WHERE c.holdings_as_of = '2026-11-24' AND c.customer_no NOT LIKE 'F%'
              AND (a.dep IS DISTINCT FROM c.deposit_balance OR l.bal IS DISTINCT FROM c.loan_balance
                   OR coalesce(l.od, 0) IS DISTINCT FROM coalesce(c.overdue_amount, 0))"""))
        counts = conn.execute(text(
            "SELECT (SELECT count(*) FROM customer_accounts), (SELECT count(*) FROM customer_loans "
            "WHERE due_date BETWEEN '2026-11-24' AND '2026-12-01' AND status = 'normal'), "
            "(SELECT count(*) FROM customer_loans WHERE status = 'overdue'), (SELECT count(*) FROM customer_events), "
            "(SELECT count(*) FROM balance_snapshots WHERE day = '2026-11-23')")).one()
    assert mismatched == 0
    assert all(n > 0 for n in counts), counts
