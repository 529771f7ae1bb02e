"""The city-scale customer generator (COPY path of `seed-demo --scale city`), run with 3 customers per community in
a rolled-back transaction: rows land inside their grid with h3/grid/owner/org set, identifiers decrypt and match
their blind indexes and masks, holdings follow the small seed's rules, and the audit log gets one summary row."""

from __future__ import annotations

import h3
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core import crypto
from geo_core.customers import identifiers as ids


def test_copy_generator_writes_valid_customers(owner_engine, settings):
    from geo_core.seed.customers_city import seed_city_customers

    with owner_engine.connect() as conn:
        tx = conn.begin()
        try:
            session = Session(bind=conn)
            before = conn.scalar(text("SELECT max(id) FROM customers"))
            audit_before = conn.scalar(text("SELECT coalesce(max(id), 0) FROM audit_log"))
            n = seed_city_customers(session, settings, per_community=3)
            communities = conn.scalar(text(
                "SELECT count(*) FROM grids g WHERE g.level = 'community' AND EXISTS (SELECT 1 FROM grid_assignments "
                "a WHERE a.grid_id = g.id AND a.post = 'account_manager' AND a.valid_to IS NULL)"))
            assert n == 3 * communities > 0
            rows = conn.execute(text(
                "SELECT c.kind::text, c.category::text, c.h3_r10, ST_X(c.geom), ST_Y(c.geom), "
                "ST_Contains(g.geom, c.geom), c.owner_user_id, c.org_id, c.id_number_enc, c.id_number_bidx, "
                "c.id_number_mask, c.uscc_enc, c.uscc_bidx, c.phone_enc, c.phone_bidx, c.phone_mask, "
                "c.deposit_balance, c.loan_balance, c.credit_limit, c.products, c.holdings_as_of, c.customer_no "
                "FROM customers c JOIN grids g ON g.id = c.grid_id WHERE c.id > :b ORDER BY c.id"), {"b": before}).all()
            assert len(rows) == n
            key, bkey = settings.sm4_key, settings.blind_index_key
            kinds, formal_with_deposit = set(), 0
            for (kind, category, cell, x, y, inside, owner, org, id_enc, id_bidx, id_mask, uscc_enc, uscc_bidx,
                 phone_enc, phone_bidx, phone_mask, deposit, loan, limit, products, as_of, customer_no) in rows:
                kinds.add(kind)
                assert inside and owner and org
                assert cell == h3.str_to_int(h3.latlng_to_cell(y, x, 10))
                phone = crypto.sm4_decrypt(phone_enc, key, aad=b"phone")
                assert crypto.blind_index(phone, bkey, "phone") == phone_bidx and ids.mask_phone(phone) == phone_mask
                if kind == "person":
                    number = crypto.sm4_decrypt(id_enc, key, aad=b"id_number")
                    assert ids.normalise_id_number(number) == number and ids.mask_id_number(number) == id_mask
                    assert crypto.blind_index(number, bkey, "id_number") == id_bidx and uscc_enc is None
                else:
                    uscc = crypto.sm4_decrypt(uscc_enc, key, aad=b"uscc")
                    assert ids.normalise_uscc(uscc) == uscc and crypto.blind_index(uscc, bkey, "uscc") == uscc_bidx
                    assert id_enc is None
                if category == "formal":
                    assert deposit > 0 and "DEP_CURRENT" in products and as_of is not None and customer_no
                    formal_with_deposit += 1
                    if loan is not None:
                        assert limit is not None and loan <= limit
                else:
                    assert deposit is None and loan is None and products is None and customer_no is None
            assert kinds == {"person", "company"} and formal_with_deposit > 0
            # one summary audit row for the COPY, not one per customer (other tables' triggers audit themselves)
            assert conn.execute(text("SELECT action, detail->>'rows' FROM audit_log WHERE id > :a AND entity = "
                                     "'customers'"), {"a": audit_before}).all() == [("insert_bulk", str(n))]
            assert conn.scalar(text("SELECT current_setting('gm.audit_mode', true)")) in ("", None)
        finally:
            tx.rollback()
