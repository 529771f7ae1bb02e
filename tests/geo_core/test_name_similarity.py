"""Name and address matching for duplicate detection: realistic Chinese pairs and non-pairs (no database)."""

from __future__ import annotations

import pytest

from geo_core.customers.matching import (
    address_key,
    fold,
    name_keys,
    name_similarity,
    normalise_address,
    normalise_name,
    similar_names,
)

SAME_PERSON = [
    ("张伟", "章伟"),  # homophone surname
    ("王芳", "汪芳"),
    ("張偉", "张伟"),  # traditional / simplified
    ("张 伟", "张伟"),  # whitespace
    ("李娜", "李纳"),
    ("刘洋", "柳阳"),
    ("胡军", "符军"),  # f/h (湖南话)
    ("刘丽", "牛丽"),  # n/l
    ("单伟", "善伟"),  # 单 read shan as a surname
]
SAME_FIRM = [
    ("湖南兴旺农业科技有限公司", "兴旺农业科技有限责任公司"),
    ("湖南兴旺农业科技有限公司（长沙）", "湖南兴旺农业科技有限公司"),  # full-width brackets
    ("长沙市芙蓉区张记米粉店", "张记米粉"),
    ("ＡＢＣ超市", "abc超市"),  # full-width Latin
    ("湖南兴旺农业科技有限公司", "湖南兴旺农业科技发展有限公司"),  # one contains the other
    ("浏阳市金穗水稻种植专业合作社", "金穗水稻种植合作社"),
]
DIFFERENT = [
    ("张伟", "李伟"),
    ("黄磊", "王磊"),
    ("张伟", "张伟华"),  # one more character: another person
    ("欧阳娜娜", "欧阳娜"),
    ("王芳", "王芬"),
    ("长沙好运来商贸有限公司", "长沙鸿运来商贸有限公司"),
    ("湖南兴旺农业科技有限公司", "湖南兴盛建材有限公司"),
    ("张伟", ""),
]


@pytest.mark.parametrize(("a", "b"), SAME_PERSON + SAME_FIRM)
def test_similar_pairs(a, b):
    score, why = name_similarity(a, b)
    assert score >= 0.85 and similar_names(a, b), (a, b, score, why)
    assert name_similarity(b, a)[0] == score  # symmetric


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_names(a, b):
    score, why = name_similarity(a, b)
    assert score < 0.85 and not similar_names(a, b), (a, b, score, why)


def test_keys_and_reasons():
    keys = name_keys("張偉")
    assert (keys.core, keys.pinyin, keys.initials, keys.fuzzy) == ("张伟", "zhang wei", "zw", "zanwei")
    assert name_keys("章伟").fuzzy == keys.fuzzy and name_keys("王芳").fuzzy == name_keys("汪芳").fuzzy == "wanhan"
    assert name_similarity("张伟", "張偉") == (1.0, "same_name")
    assert name_similarity("张伟", "章伟") == (0.95, "same_pinyin")
    assert name_similarity("湖南兴旺农业科技有限公司", "湖南兴旺农业科技发展有限公司")[1] == "contains"
    assert [fold(s) for s in ("zhang", "chen", "shi", "nan", "fang", "ming", "rong", "2")] == [
        "zan", "cen", "si", "lan", "han", "min", "long", "2"]


def test_company_names_lose_region_and_legal_form_but_persons_do_not():
    assert normalise_name("湖南省长沙市兴旺农业科技股份有限公司", company=True) == "兴旺农业科技"
    assert normalise_name("长沙（芙蓉）好运来商行") == "好运来"
    assert normalise_name("长沙", company=True) == "长沙"  # nothing left to strip to
    assert normalise_name("常店", company=False) == "常店"


@pytest.mark.parametrize(("a", "b"), [
    ("湖南省长沙市芙蓉区五一大道100号", "五一大道一百号"),
    ("芙蓉区五一大道１００号", "长沙市五一大道100号"),
    ("岳麓区银杏小区三栋二单元501室", "银杏小区3-2-501"),
    ("银杏小区3#2单元501房", "银杏小区3栋2单元501"),
    ("银杏小区5号楼1单元101室", "银杏小区5-1-101"),
    ("黄花镇黄花村十二组", "黄花镇黄花村12组"),
    ("銀杏小區3棟", "银杏小区3栋"),
])
def test_same_address(a, b):
    assert normalise_address(a) == normalise_address(b), (normalise_address(a), normalise_address(b))


def test_different_addresses_and_short_ones():
    assert normalise_address("银杏小区3-2-501") != normalise_address("银杏小区3-2-502")
    assert normalise_address("五一大道100号") != normalise_address("五一大道101号")
    assert address_key("长沙市芙蓉区") is None and address_key(None) is None and address_key("") is None
    assert normalise_address("银杏小区二十栋") == "银杏小区20"
