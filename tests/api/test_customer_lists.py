"""Customer lists (名单): templates, blank files, upload + preview with per-row errors, GBK, huge cells,
duplicate keys, matches with existing customers, batch search/rename/delete, scope."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from openpyxl import Workbook, load_workbook
from sqlalchemy import text

from geo_core.customers.identifiers import id_check_char, uscc_check_char
from geo_core.db import SYSTEM, set_context

T = "/api/v1/customer-list-templates"
B = "/api/v1/customer-imports"
PERSON_HEADER = ["姓名", "身份证号", "手机号码", "地址", "经度", "纬度"]


# -- synthetic data (region 4399xx does not exist, so no clash with the demo customers) ---------------------------

def id_number(seq: int, region: str = "439901") -> str:
    born = date(1960, 1, 1) + timedelta(days=seq // 1000)
    first17 = f"{region}{born:%Y%m%d}{seq % 1000:03d}"
    return first17 + id_check_char(first17)


def uscc(seq: int) -> str:
    body = f"91439901{seq:09d}"
    return body + uscc_check_char(body)


def phone(seq: int) -> str:
    return f"199{seq:08d}"


def person_rows(n: int, start: int = 0) -> list[list[str]]:
    return [[f"客户{start + i}", id_number(start + i), phone(start + i), f"长沙市芙蓉区测试路{i}号",
             f"{112.98 + (i % 100) * 0.0002:.6f}", f"{28.19 + (i % 50) * 0.0002:.6f}"] for i in range(n)]


def to_csv(rows: list[list[str]], header: list[str] = PERSON_HEADER, encoding: str = "utf-8-sig") -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode(encoding)


def upload(client, h, data: bytes, template_id: int, filename: str = "list.csv", name: str | None = None):
    query = {"template_id": template_id, **({"name": name} if name else {})}
    return client.post(B, query_string=query, data={"file": (io.BytesIO(data), filename)}, headers=h,
                       content_type="multipart/form-data")


def builtin(client, h, code: str = "person_list") -> int:
    return next(t["id"] for t in client.get(T, headers=h).get_json() if t["code"] == code)


def preview(client, h, batch_id: int, **query) -> dict:
    r = client.get(f"{B}/{batch_id}/preview", query_string=query, headers=h)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


# -- templates --------------------------------------------------------------------------------------------------------

def test_builtin_templates_and_blank_files(client, login):
    h = login("am_430102_1_1")  # list:read only
    templates = {t["code"]: t for t in client.get(T, headers=h).get_json()}
    assert [f["label"] for f in templates["person_list"]["fields"]] == PERSON_HEADER
    assert {f["maps_to"] for f in templates["merchant_list"]["fields"]} == {"name", "uscc", "phone", "address",
                                                                            "industry"}
    assert templates["merchant_list"]["customer_kind"] == "company" and templates["person_list"]["is_builtin"]
    tid = templates["person_list"]["id"]
    r = client.get(f"{T}/{tid}/blank?format=xlsx", headers=h)
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    ws = load_workbook(io.BytesIO(r.data)).active
    assert [c.value for c in ws[1]] == PERSON_HEADER and ws["B2"].number_format == "@"
    r = client.get(f"{T}/{tid}/blank?format=csv", headers=h)
    assert r.data.decode("utf-8-sig").strip() == ",".join(PERSON_HEADER)
    assert client.post(T, json={"name": "x"}, headers=h).status_code == 403  # no list:edit


def _template(**extra) -> dict:
    fields = [
        {"key": "name", "label": "客户名称", "maps_to": "name", "required": True},
        {"key": "id_number", "label": "证件号码", "maps_to": "id_number", "unique": True},
        {"key": "mobile", "label": "手机", "maps_to": "phone"},
        {"key": "channel", "label": "渠道", "type": "enum", "dict_code": "channel"},
        {"key": "member_no", "label": "会员号", "regex": r"M\d{4}", "unique": True},
        {"key": "visit_date", "label": "走访日期", "type": "date"},
        {"key": "deposit", "label": "存款", "type": "decimal"},
        {"key": "family_size", "label": "家庭人数", "type": "integer"},
        {"key": "has_loan", "label": "有贷款", "type": "boolean"},
    ]
    return {"name": "走访名单", "customer_kind": "person", "fields": fields, **extra}


def test_template_crud_and_rules(client, login):
    h = login("bl_430102")
    r = client.post(T, json=_template(), headers=h)
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["org_id"] is not None and created["fields"][3]["type"] == "enum"
    assert client.post(T, json=_template(), headers=h).status_code == 409  # same name in the same org
    bad_cases = [
        ({"fields": [{"key": "name", "label": "名称", "maps_to": "name"}, {"key": "name", "label": "x"}]},
         "fields.1.key"),
        ({"fields": [{"key": "name", "label": "名称", "maps_to": "name"},
                     {"key": "c", "label": "渠道", "type": "enum"}]}, "fields.1.dict_code"),
        ({"fields": [{"key": "name", "label": "名称", "maps_to": "name"},
                     {"key": "c", "label": "渠道", "type": "enum", "dict_code": "no_such_dict"}]},
         "fields.1.dict_code"),
        ({"fields": [{"key": "name", "label": "名称", "maps_to": "name"},
                     {"key": "c", "label": "c", "regex": "([a-z"}]}, "fields.1.regex"),
        ({"fields": [{"key": "a", "label": "名称"}]}, "fields"),  # nothing maps to name
        ({"customer_kind": "company", "fields": [{"key": "name", "label": "名称", "maps_to": "name"},
                                                 {"key": "idn", "label": "身份证", "maps_to": "id_number"}]}, "fields"),
        ({"fields": [{"key": "name", "label": "名称", "maps_to": "name"},
                     {"key": "x", "label": "经度", "maps_to": "lon"}]}, "fields.1.type"),
    ]
    for patch, error_key in bad_cases:
        r = client.post(T, json={**_template(name="坏模板"), **patch}, headers=h)
        assert r.status_code == 422 and error_key in r.get_json()["errors"], (patch, r.get_json())
    tid = created["id"]
    r = client.patch(f"{T}/{tid}", json={"name": "走访名单（新）", "crs": "gcj02"}, headers=h)
    assert r.status_code == 200 and r.get_json()["crs"] == "gcj02"
    # built-in (shared) templates: only a scope-all admin edits them, nobody deletes them
    person = builtin(client, h)
    assert client.patch(f"{T}/{person}", json={"description": "x"}, headers=h).status_code == 403
    assert client.delete(f"{T}/{person}", headers=login("admin")).status_code == 409
    # another branch does not see this branch's template
    assert client.get(f"{T}/{tid}", headers=login("bl_430104")).status_code == 404
    assert client.delete(f"{T}/{tid}", headers=login("bl_430104")).status_code == 404
    assert client.delete(f"{T}/{tid}", headers=h).status_code == 204


# -- upload and preview ---------------------------------------------------------------------------------------------

def test_valid_file_preview_masks_identifiers(client, login, db_session):
    h = login("bl_430102")
    r = upload(client, h, to_csv(person_rows(3)), builtin(client, h), name="三月名单")
    assert r.status_code == 201, r.get_json()
    batch = r.get_json()
    assert batch["status"] == "uploaded" and batch["total_rows"] == 3 and batch["name"] == "三月名单"
    body = preview(client, h, batch["id"])
    assert body["batch"]["status"] == "validated" and body["batch"]["valid_rows"] == 3
    assert body["batch"]["invalid_rows"] == 0 and body["total"] == 3
    first = body["items"][0]
    assert first["row"] == 2 and first["status"] == "new" and first["errors"] is None
    clear = id_number(0)
    assert first["values"]["id_number"] == clear[:3] + "*" * 11 + clear[-4:]
    assert first["values"]["phone"] == "199****0000"
    assert clear not in r.get_data(as_text=True) + str(body)
    set_context(db_session, SYSTEM)  # the stored file is sealed: no identifier in clear at rest
    blob = db_session.scalar(text("SELECT data_enc FROM customer_import_files WHERE batch_id = :b"),
                             {"b": batch["id"]})
    assert blob and clear.encode() not in bytes(blob) and "客户0".encode() not in bytes(blob)


def test_invalid_rows_reported_per_row_and_field(client, login):
    h = login("bl_430102")
    tid = client.post(T, json=_template(), headers=h).get_json()["id"]
    header = ["客户名称", "证件号码", "手机", "渠道", "会员号", "走访日期", "存款", "家庭人数", "有贷款", "备注"]
    bad_check = id_number(1)[:-1] + ("0" if id_number(1)[-1] != "0" else "1")
    rows = [
        ["好客户", id_number(1), phone(1), "手机银行", "M0001", "2026-03-01", "1,234.50", "3", "是", "x"],  # ok
        ["", bad_check, "12345", "飞鸽传书", "X1", "2026-13-01", "abc", "3.5", "maybe", ""],
        ["重复客户", id_number(1), phone(2), "outlet", "M0001", "2026/03/02", "10", "2", "否", ""],
    ]
    batch = upload(client, h, to_csv(rows, header), tid).get_json()
    body = preview(client, h, batch["id"])
    assert body["ignored_columns"] == ["备注"]
    assert (body["batch"]["valid_rows"], body["batch"]["invalid_rows"]) == (1, 2)
    items = {i["row"]: i for i in body["items"]}
    assert items[2]["status"] == "new"
    assert set(items[3]["errors"]) == {"name", "id_number", "mobile", "channel", "member_no", "visit_date",
                                       "deposit", "family_size", "has_loan"}
    assert "校验位" in items[3]["errors"]["id_number"][0]
    assert set(items[4]["errors"]) == {"id_number", "member_no"}  # duplicates of row 2 (unique keys)
    assert "第 2 行重复" in items[4]["errors"]["id_number"][0]
    invalid = preview(client, h, batch["id"], only="invalid")
    assert [i["row"] for i in invalid["items"]] == [3, 4]
    r = client.post(f"{B}/{batch['id']}/submit", json={}, headers=h)
    assert r.status_code == 422 and r.get_json()["code"] == "IMPORT_HAS_ERRORS"


def test_gbk_csv_and_xlsx(client, login):
    h = login("bl_430102")
    gbk = upload(client, h, to_csv(person_rows(2), encoding="gbk"), builtin(client, h), filename="gbk.csv")
    assert gbk.status_code == 201, gbk.get_json()
    body = preview(client, h, gbk.get_json()["id"])
    assert body["batch"]["valid_rows"] == 2 and body["items"][0]["values"]["name"] == "客户0"
    wb = Workbook()
    ws = wb.active
    ws.append(PERSON_HEADER)
    ws.append(["表格客户", id_number(7), int(phone(7)), "地址", 112.99, 28.19])  # numbers typed as numbers
    out = io.BytesIO()
    wb.save(out)
    xlsx = upload(client, h, out.getvalue(), builtin(client, h), filename="list.xlsx")
    assert xlsx.status_code == 201, xlsx.get_json()
    assert preview(client, h, xlsx.get_json()["id"])["batch"]["valid_rows"] == 1
    for data, filename in ((b"\xff\xfe\x00garbage", "x.csv"), (b"not a zip", "x.xlsx"), (b"a,b", "x.txt")):
        r = upload(client, h, data, builtin(client, h), filename=filename)
        assert r.status_code == 422 and r.get_json()["code"] == "IMPORT_REJECTED", filename
    missing = upload(client, h, to_csv([["x"]], header=["地址"]), builtin(client, h))
    assert missing.status_code == 422 and "姓名" in missing.get_json()["message"]


def test_huge_cell(client, login):
    h = login("bl_430102")
    rows = person_rows(2)
    rows[1][3] = "长" * 100_000  # an address of 100,000 characters
    batch = upload(client, h, to_csv(rows), builtin(client, h)).get_json()
    body = preview(client, h, batch["id"])
    assert (body["batch"]["valid_rows"], body["batch"]["invalid_rows"]) == (1, 1)
    bad = body["items"][1]
    assert "超过上限 300" in bad["errors"]["address"][0]
    assert len(bad["values"]["address"]) < 100  # the preview never echoes the whole cell
    rows[1][3] = "长" * 200_000  # beyond the CSV field limit: the file is rejected, not a 500
    r = upload(client, h, to_csv(rows), builtin(client, h))
    assert r.status_code == 422 and r.get_json()["code"] == "IMPORT_REJECTED"


def test_matches_existing_customers_by_blind_index(client, login):
    h = login("bl_430102")
    mine = client.post("/api/v1/customers", json={"kind": "person", "name": "老客户", "id_number": id_number(500)},
                       headers=h).get_json()
    by_phone = client.post("/api/v1/customers", json={"kind": "person", "name": "电话客户",
                                                      "phone": phone(501)}, headers=h).get_json()
    admin = login("admin")
    yuelu = client.get("/api/v1/orgs?q=BR430104", headers=admin).get_json()["items"][0]["id"]
    r = client.post("/api/v1/customers", json={"kind": "person", "name": "岳麓客户", "id_number": id_number(502),
                                               "org_id": yuelu, "owner_user_id": None}, headers=admin)
    assert r.status_code == 201, r.get_json()
    rows = person_rows(4, start=500)
    rows[1][1] = ""  # no ID number: matched by phone
    batch = upload(client, h, to_csv(rows), builtin(client, h)).get_json()
    body = preview(client, h, batch["id"])
    items = {i["row"]: i for i in body["items"]}
    assert (items[2]["status"], items[2]["customer_id"], items[2]["matched_by"]) == ("matched", mine["id"],
                                                                                      "id_number")
    assert (items[3]["status"], items[3]["customer_id"], items[3]["matched_by"]) == ("matched", by_phone["id"],
                                                                                      "phone")
    assert items[4]["status"] == "invalid" and "其他机构" in items[4]["errors"]["id_number"][0]
    assert items[5]["status"] == "new"
    assert body["batch"]["matched_rows"] == 2
    assert [i["row"] for i in preview(client, h, batch["id"], only="matched")["items"]] == [2, 3]


# -- batches: search, rename, delete, scope --------------------------------------------------------------------------

def test_batch_search_rename_delete(client, login, redis_conn):
    h = login("bl_430102")
    person, merchant = builtin(client, h), builtin(client, h, "merchant_list")
    first = upload(client, h, to_csv(person_rows(1)), person, name="芙蓉一月名单").get_json()
    second = upload(client, h, to_csv([["小店", uscc(1), phone(9), "地址", "餐饮"]],
                                      ["商户名称", "统一社会信用代码", "联系电话", "经营地址", "行业"]),
                    merchant, name="商户二月").get_json()
    me = client.get("/api/v1/me", headers=h).get_json()

    def names(**query) -> list[str]:
        r = client.get(B, query_string=query, headers=h)
        assert r.status_code == 200, r.get_json()
        return [b["name"] for b in r.get_json()["items"]]

    assert names(q="一月") == ["芙蓉一月名单"]
    assert names(template_id=merchant) == ["商户二月"]
    assert set(names(importer_user_id=me["id"])) >= {"芙蓉一月名单", "商户二月"}
    assert names(created_from="2000-01-01T00:00:00", created_to="2001-01-01T00:00:00") == []
    assert "商户二月" in names(created_from=second["created_at"])
    r = client.patch(f"{B}/{first['id']}", json={"name": "芙蓉名单（改）"}, headers=h)
    assert r.status_code == 200 and r.get_json()["name"] == "芙蓉名单（改）"
    assert client.delete(f"{B}/{first['id']}", headers=h).status_code == 204
    assert client.get(f"{B}/{first['id']}", headers=h).status_code == 404
    r = client.post(f"{B}/{second['id']}/submit", json={}, headers=h)
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["job"]["status"] == "queued"
    assert client.post(f"{B}/{second['id']}/submit", json={}, headers=h).status_code == 409  # already queued
    r = client.delete(f"{B}/{second['id']}", headers=h)
    assert r.status_code == 409 and r.get_json()["code"] == "IMPORT_SUBMITTED"


def test_scope_owners_orgs_and_other_branches(client, login):
    h = login("bl_430102")
    fields = [{"key": "name", "label": "姓名", "maps_to": "name", "required": True},
              {"key": "owner", "label": "客户经理", "maps_to": "owner"},
              {"key": "org", "label": "机构号", "maps_to": "org"}]
    tid = client.post(T, json={"name": "分配名单", "customer_kind": "person", "fields": fields},
                      headers=h).get_json()["id"]
    rows = [["甲", "am_430102_1_1", ""], ["乙", "am_430104_1_1", ""], ["丙", "", "BR430104"],
            ["丁", "", "OU43010201"], ["戊", "no_such_user", ""]]
    batch = upload(client, h, to_csv(rows, ["姓名", "客户经理", "机构号"]), tid).get_json()
    items = {i["row"]: i for i in preview(client, h, batch["id"])["items"]}
    assert items[2]["status"] == "new" and items[5]["status"] == "new"
    assert "权限范围" in items[3]["errors"]["owner"][0]
    assert "权限范围" in items[4]["errors"]["org"][0]
    assert "owner" in items[6]["errors"]
    # another branch: the batch does not exist for him, nor in his lists
    other = login("bl_430104")
    for method, path in (("get", f"{B}/{batch['id']}"), ("get", f"{B}/{batch['id']}/preview"),
                         ("get", f"{B}/{batch['id']}/rows"), ("patch", f"{B}/{batch['id']}"),
                         ("delete", f"{B}/{batch['id']}"), ("post", f"{B}/{batch['id']}/submit")):
        r = getattr(client, method)(path, json={"name": "x"} if method == "patch" else {}, headers=other)
        assert r.status_code == 404, (method, path, r.get_json())
    assert batch["id"] not in [b["id"] for b in client.get(B, headers=other).get_json()["items"]]
    # he cannot upload against this branch's template either
    assert upload(client, other, to_csv(rows, ["姓名", "客户经理", "机构号"]), tid).status_code == 404
    # an account manager reads lists but does not import
    am = login("am_430102_1_1")
    assert upload(client, am, to_csv(person_rows(1)), builtin(client, am)).status_code == 403
