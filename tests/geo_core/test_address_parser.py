"""Chinese address parser on real-looking Changsha addresses, with the division index read from admin_divisions
(the Changsha codes seeded into the test database, nothing hard-coded in the parser)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from geo_core.geocoding.parser import AddressParser, Division, DivisionIndex, cn_to_int, normalise


@pytest.fixture(scope="module")
def parser(owner_engine) -> AddressParser:
    with owner_engine.connect() as conn:
        rows = conn.execute(text("SELECT code, name, short_name, level::text, kind FROM admin_divisions")).all()
    index = DivisionIndex(Division(code=r[0], name=r[1], short_name=r[2], level=r[3], kind=r[4]) for r in rows)
    assert len(index) > 1800  # city, 9 districts, 172 townships, 1,649 villages
    return AddressParser(index)


def names(parsed) -> dict[str, str | None]:
    return {level: (getattr(parsed, level).short_name or getattr(parsed, level).name)
            if getattr(parsed, level) else None for level in ("city", "district", "township", "village")}


# address -> expected (city, district, township, village) and detail fields
CASES = [
    ("湖南省长沙市芙蓉区五一大道389号华天大酒店", ("长沙市", "芙蓉区", None, None),
     {"road": "五一大道", "house_no": "389", "place": "华天大酒店", "province": "湖南省"}),
    ("长沙市芙蓉区文艺路街道识字里社区", ("长沙市", "芙蓉区", "文艺路街道", "识字里社区"), {}),
    # missing city, township inferred from the community
    ("芙蓉区识字里社区3栋2单元401室", (None, "芙蓉区", "文艺路街道", "识字里社区"),
     {"building": "3", "unit": 2, "room": "401"}),
    # abbreviation of the district, no province
    ("长沙芙蓉识字里社区", ("长沙市", "芙蓉区", "文艺路街道", "识字里社区"), {}),
    # 芙蓉中路 is a road, not the district 芙蓉区; full-width digits; Chinese numeral section
    ("长沙芙蓉中路二段１２３号", ("长沙市", None, None, None), {"road": "芙蓉中路2段", "house_no": "123"}),
    ("湖南长沙岳麓区麓山南路麓山门小区三栋2单元401", ("长沙市", "岳麓区", None, None),
     {"road": "麓山南路", "place": "麓山门小区", "building": "3", "unit": 2, "room": "401", "province": "湖南"}),
    ("浏阳市沿溪镇沙龙村3组45号", (None, "浏阳市", "沿溪镇", "沙龙村"), {"group": 3, "house_no": "45"}),
    ("长沙县星沙街道开元东路 1288号", (None, "长沙县", "星沙街道", None), {"road": "开元东路", "house_no": "1288"}),
    ("地址：长沙市 岳麓区 谷山村 十二组", ("长沙市", "岳麓区", "望岳街道", "谷山村"), {"group": 12}),
    ("芙蓉区五一大道（近黄兴路）", (None, "芙蓉区", None, None), {"road": "五一大道", "house_no": None}),
    ("长沙市天心区坡子街街道太平街22号附近", ("长沙市", "天心区", "坡子街街道", None),
     {"road": "太平街", "house_no": "22"}),
    ("长沙市雨花区砂子塘街道", ("长沙市", "雨花区", "砂子塘街道", None), {}),
    ("宁乡市", (None, "宁乡市", None, None), {}),
    ("岳麓区麓谷企业广场A3栋", (None, "岳麓区", None, None), {"place": "麓谷企业广场", "building": "A3"}),
    # 长沙县 must not be read as the city 长沙 + 县
    ("长沙县黄花镇", (None, "长沙县", "黄花镇", None), {}),
    ("长沙市长沙县黄花镇", ("长沙市", "长沙县", "黄花镇", None), {}),
    ("浏阳集里街道", (None, "浏阳市", "集里街道", None), {}),
    ("望城区高塘岭街道", (None, "望城区", "高塘岭街道", None), {}),
    ("岳麓区西湖街道办事处", (None, "岳麓区", "西湖街道", None), {}),
    ("岳麓区望城坡街道办", (None, "岳麓区", "望城坡街道", None), {}),
    ("长沙市开福区湘江中路一段52号凯乐国际城9栋1501", ("长沙市", "开福区", None, None),
     {"road": "湘江中路1段", "house_no": "52", "place": "凯乐国际城", "building": "9", "room": "1501"}),
    ("雨花区韶山中路1号湘府花园A区3栋2单元1002室", (None, "雨花区", None, None),
     {"road": "韶山中路", "house_no": "1", "place": "湘府花园A区", "building": "3", "unit": 2, "room": "1002"}),
    ("天心区解放西路188号国金中心T1栋3206", (None, "天心区", None, None),
     {"road": "解放西路", "house_no": "188", "place": "国金中心", "building": "T1", "room": "3206"}),
    # noise: label, spaces and commas between parts, a locality before the road
    ("地址: 长沙市开福区 四方坪 ,  德雅路1288号", ("长沙市", "开福区", None, None),
     {"road": "德雅路", "house_no": "1288", "locality": "四方坪"}),
    ("湖南省 长沙市 芙蓉区 五一大道 389号", ("长沙市", "芙蓉区", None, None), {"road": "五一大道", "house_no": "389"}),
    ("长沙市天心区 坡子街 火宫殿(坡子街总店)", ("长沙市", "天心区", None, None), {"road": "坡子街", "place": "火宫殿"}),
    # traditional characters and full-width forms
    ("湖南省長沙市芙蓉區五一大道88號", ("长沙市", "芙蓉区", None, None), {"road": "五一大道", "house_no": "88"}),
    ("ＣＢＤ长沙市芙蓉区五一大道８８号", ("长沙市", "芙蓉区", None, None), {"house_no": "88", "province": None}),
    # a renamed township we do not know is skipped when a known community follows
    ("长沙市岳麓区溁湾镇街道湖东社区", ("长沙市", "岳麓区", "望月湖街道", "湖东社区"), {}),
    # same-named communities: the district decides
    ("雨花区东塘社区5栋", (None, "雨花区", "东塘街道", "东塘社区"), {"building": "5"}),
    ("岳麓区东塘社区", (None, "岳麓区", "麓谷街道", "东塘社区"), {}),
    ("芙蓉区东湖街道东湖村十二组", (None, "芙蓉区", "东湖街道", "东湖村"), {"group": 12}),
    ("芙蓉区马王堆街道马王堆社区3组", (None, "芙蓉区", "马王堆街道", "马王堆社区"), {"group": 3}),
    ("岳麓区麓山南路932号中南大学", (None, "岳麓区", None, None),
     {"road": "麓山南路", "house_no": "932", "place": "中南大学"}),
    # 麓山南路社区 is a community, 麓山南路 a road
    ("岳麓区麓山南路社区", (None, "岳麓区", "岳麓街道", "麓山南路社区"), {"road": None}),
    ("芙蓉区朝阳街123号", (None, "芙蓉区", None, None), {"road": "朝阳街", "house_no": "123"}),
    ("长沙市芙蓉区朝阳街街道", ("长沙市", "芙蓉区", "朝阳街街道", None), {"road": None}),
    ("天心区书院路9号", (None, "天心区", None, None), {"road": "书院路", "house_no": "9"}),
    ("长沙岳麓区五丰村", ("长沙市", "岳麓区", "莲花镇", "五丰村"), {}),
    ("开福区芙蓉北路1段", (None, "开福区", None, None), {"road": "芙蓉北路1段"}),
    ("住址：岳麓区谷山村十二组", (None, "岳麓区", "望岳街道", "谷山村"), {"group": 12}),
    ("芙蓉区识字里社区5#楼", (None, "芙蓉区", "文艺路街道", "识字里社区"), {"building": "5"}),
]


@pytest.mark.parametrize("address,divisions,details", CASES, ids=[c[0] for c in CASES])
def test_parses_changsha_addresses(parser, address, divisions, details):
    parsed = parser.parse(address)
    assert tuple(names(parsed).values()) == divisions, parsed.as_dict()
    for key, expected in details.items():
        assert getattr(parsed, key) == expected, (key, parsed.as_dict())


def test_codes_are_consistent_with_the_hierarchy(parser):
    parsed = parser.parse("长沙市芙蓉区文艺路街道识字里社区")
    assert parsed.district.code == "430102" and parsed.township.code == "430102001"
    assert parsed.village.code.startswith(parsed.township.code)
    assert parsed.division_level == "village"


def test_ambiguous_community_without_district_is_not_guessed(parser):
    parsed = parser.parse("长沙市东塘社区")  # 岳麓区 and 雨花区 both have one
    assert parsed.village is None and parsed.district is None
    assert {d.code[:6] for d in parsed.ambiguous} == {"430104", "430111"}


def test_nothing_recognisable(parser):
    parsed = parser.parse("随便写的一些字")
    assert parsed.finest is None and parsed.key() is None
    assert parser.parse("").normalised == "" and parser.parse("   ").finest is None


def test_keys_identify_the_same_door_written_differently(parser):
    a = parser.parse("湖南省长沙市芙蓉区五一大道389号华天大酒店")
    b = parser.parse("芙蓉区 五一大道３８９号 华天大酒店")
    c = parser.parse("长沙市芙蓉区五一大道389号华天大酒店（东门）")
    assert a.key() == b.key() == c.key() == "R|430102|五一大道|389|华天大酒店|"
    assert parser.parse("芙蓉区五一大道389号华天大酒店2栋").building_free_key() == a.key()
    # rural: community + group + number
    assert parser.parse("浏阳市沿溪镇沙龙村3组45号").key() == parser.parse("浏阳沙龙村三组45号").key()
    # a bare district or township is not a door
    assert parser.parse("长沙市雨花区砂子塘街道").key() is None


def test_normalise():
    assert normalise("地址：长沙市　芙蓉区，五一大道（近黄兴路）８８号") == "长沙市芙蓉区五一大道88号"
    assert normalise("十二组三栋") == "12组3栋"
    assert cn_to_int("二十") == 20 and cn_to_int("十二") == 12 and cn_to_int("一百零五") == 105
    assert cn_to_int("一零五") == 105 and cn_to_int("") is None and cn_to_int("甲") is None
