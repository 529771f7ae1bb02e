"""Matching keys for Chinese customer names and addresses (duplicate detection, 客户查重).

Pure functions, no database: normalise a name (full-width -> half-width, traditional -> simplified for common
characters, brackets, whitespace, company region prefixes and legal-form suffixes), turn it into tone-less
pinyin, initials and a *fuzzy pinyin key* that folds the sounds Hunan speakers (and typists) mix up
(zh/z, ch/c, sh/s, n/l, f/h, -ng/-n), and score two names. Addresses are normalised the same way plus
province/city/district prefixes, Chinese numerals and building/unit/room forms (3栋2单元501室 = 3-2-501).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from pypinyin import Style, lazy_pinyin
from rapidfuzz import fuzz

KEY_VERSION = 1  # bump when the keys below change: stored keys of an older version are recomputed
SIMILAR = 0.85  # name similarity at or above which two names count as "similar"

# common traditional -> simplified characters in names, firm names and addresses (the basics; the pinyin is
# the same either way, so the pinyin keys already match traditional and simplified spellings)
_TRADITIONAL = (
    "張陳劉黃楊趙吳鄭孫馮蔣沈韓許鄧蕭葉蘇盧賈蔡譚鍾龍範彭魯閻錢湯尹黎賀顧孟羅梁謝馬胡"
    "偉華國東發興長門開關會義樂藝軍紅綠藍銀鐵錦鳳鵬鴻龜齊慶榮華寶貴財軒輝麗愛強儀順"
    "業貿廠農館飯餐飲號區縣鎮鄉村廣場樓廈園衛廳電訊網絡車輛維修鋪貨運輸醫藥產銷經營"
    "體設計裝飾燈飾資訊紡織種養殖專協聯亞灣島嶺陽陰雲風點萬與為們個這麼總務勞動學書記棟單")
_SIMPLIFIED = (
    "张陈刘黄杨赵吴郑孙冯蒋沈韩许邓萧叶苏卢贾蔡谭钟龙范彭鲁阎钱汤尹黎贺顾孟罗梁谢马胡"
    "伟华国东发兴长门开关会义乐艺军红绿蓝银铁锦凤鹏鸿龟齐庆荣华宝贵财轩辉丽爱强仪顺"
    "业贸厂农馆饭餐饮号区县镇乡村广场楼厦园卫厅电讯网络车辆维修铺货运输医药产销经营"
    "体设计装饰灯饰资讯纺织种养殖专协联亚湾岛岭阳阴云风点万与为们个这么总务劳动学书记栋单")
assert len(_TRADITIONAL) == len(_SIMPLIFIED)
T2S = str.maketrans(_TRADITIONAL, _SIMPLIFIED)

# surnames whose reading differs from the character's common one (多音字 as a surname, first character)
SURNAME_READINGS = {"单": "shan", "曾": "zeng", "仇": "qiu", "区": "ou", "解": "xie", "朴": "piao", "查": "zha",
                    "盖": "ge", "乐": "yue", "缪": "miao", "覃": "qin", "翟": "zhai", "褚": "chu", "句": "gou",
                    "尉": "yu", "万": "wan", "秘": "bi", "种": "chong", "员": "yun", "能": "nai"}

# legal forms and shop words stripped from firm names, longest first (湖南某某农业科技有限公司 -> 某某农业科技)
COMPANY_SUFFIXES = ("股份有限公司", "有限责任公司", "农民专业合作社", "专业合作社", "有限公司", "责任公司", "分公司",
                    "个体工商户", "合作社", "经营部", "门市部", "集团", "公司", "商行", "店")
REGIONS = ("湖南省", "湖南", "长沙市", "长沙", "芙蓉区", "天心区", "岳麓区", "开福区", "雨花区", "望城区", "长沙县",
           "浏阳市", "宁乡市", "浏阳", "宁乡", "望城")
ADDRESS_PREFIXES = ("中国", "湖南省", "湖南", "长沙市", "长沙", "芙蓉区", "天心区", "岳麓区", "开福区", "雨花区",
                    "望城区", "长沙县", "浏阳市", "宁乡市")
_BRACKETS = re.compile(r"[(\[{【〔《<][^)\]}】〕》>]*[)\]}】〕》>]")
_PUNCT = re.compile(r"[\s\-_.,;:'\"·•・、，。；：！!?？/\\|~`^*+=&#@%$]+")
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9}
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百]+(?=[号栋幢座单元室楼层组])")
# fuzzy pinyin (模糊音): initials then finals
_INITIAL_FOLDS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"), ("f", "h"), ("r", "l"))
_FINAL_FOLDS = (("iang", "ian"), ("uang", "uan"), ("ang", "an"), ("eng", "en"), ("ing", "in"))


def basic(text: str) -> str:
    """NFKC (full-width -> half-width), lower-case Latin, traditional -> simplified for common characters."""
    return unicodedata.normalize("NFKC", text or "").lower().translate(T2S)


def normalise_name(name: str, *, company: bool | None = None) -> str:
    """The comparable core of a name: no brackets, whitespace or punctuation; firms lose region and legal form."""
    value = _PUNCT.sub("", _BRACKETS.sub("", basic(name)))
    if company is None:
        company = any(value.endswith(s) for s in COMPANY_SUFFIXES) and len(value) > 4
    if company:
        for _ in range(3):  # 长沙市芙蓉区某某店 -> 某某 (strip repeated prefixes/suffixes, keep >= 2 chars)
            before = value
            for region in REGIONS:
                if value.startswith(region) and len(value) - len(region) >= 2:
                    value = value[len(region):]
            for suffix in COMPANY_SUFFIXES:
                if value.endswith(suffix) and len(value) - len(suffix) >= 2:
                    value = value[: -len(suffix)]
                    break
            if value == before:
                break
    return value


@lru_cache(maxsize=65536)
def syllables(core: str) -> tuple[str, ...]:
    """Tone-less pinyin of each Chinese character; other runs (Latin, digits) kept as lower-case chunks."""
    out: list[str] = []
    for i, part in enumerate(lazy_pinyin(core, style=Style.NORMAL, errors=lambda s: [s], v_to_u=False)):
        if i == 0 and core[:1] in SURNAME_READINGS:
            part = SURNAME_READINGS[core[0]]
        out.extend(re.findall(r"[a-z0-9]+", part.lower()))
    return tuple(out)


def fold(syllable: str) -> str:
    """The fuzzy form of one syllable: zh->z, ch->c, sh->s, n->l, f->h, r->l; -ang->-an, -eng->-en, -ing->-in."""
    if not syllable.isalpha():
        return syllable
    for src, dst in _INITIAL_FOLDS:
        if syllable.startswith(src):
            syllable = dst + syllable[len(src):]
            break
    for src, dst in _FINAL_FOLDS:
        if syllable.endswith(src):
            return syllable[: -len(src)] + dst
    return syllable


@dataclass(frozen=True)
class NameKeys:
    core: str  # normalised characters
    pinyin: str  # tone-less, space separated: "zhang wei"
    initials: str  # "zw"
    fuzzy: str  # folded pinyin without spaces: "zanwei" (blocking key)


def name_keys(name: str, *, company: bool | None = None) -> NameKeys:
    core = normalise_name(name, company=company)
    sy = syllables(core)
    return NameKeys(core, " ".join(sy), "".join(s[0] for s in sy), "".join(fold(s) for s in sy))


def name_similarity(a: str | NameKeys, b: str | NameKeys) -> tuple[float, str]:
    """Score in [0, 1] and why: same / same_pinyin (homophones, 张伟/章伟) / contains (firms) / edit distance."""
    ka = a if isinstance(a, NameKeys) else name_keys(a)
    kb = b if isinstance(b, NameKeys) else name_keys(b)
    if not ka.core or not kb.core:
        return 0.0, "empty"
    if ka.core == kb.core:
        return 1.0, "same_name"
    if ka.fuzzy and ka.fuzzy == kb.fuzzy:
        return 0.95, "same_pinyin"
    short, long_ = sorted((ka.core, kb.core), key=len)
    if len(short) >= 4 and short in long_:
        return 0.9, "contains"
    chars = fuzz.ratio(ka.core, kb.core) / 100
    if len(ka.core) != len(kb.core) and len(long_) <= 4:
        chars *= 0.9  # 欧阳娜 vs 欧阳娜娜: in short personal names one more character is another person
    sounds = fuzz.ratio(" ".join(fold(s) for s in ka.pinyin.split()),
                        " ".join(fold(s) for s in kb.pinyin.split())) / 100
    # pinyin edit distance only counts when the names have the same number of syllables (张伟 vs 张伟华 differ)
    if len(ka.pinyin.split()) != len(kb.pinyin.split()):
        sounds = 0.0
    score = max(chars, 0.9 * sounds)
    return round(score, 3), "edit_distance"


def similar_names(a: str, b: str) -> bool:
    return name_similarity(a, b)[0] >= SIMILAR


def _cn_number(token: str) -> str:
    """一 -> 1, 十二 -> 12, 二十 -> 20, 一百零五 -> 105, 二零一 -> 201 (digit by digit when no 十/百)."""
    if "十" not in token and "百" not in token:
        return "".join(str(_CN_DIGITS[c]) for c in token)
    total, current = 0, 0
    for c in token:
        if c == "百":
            total += (current or 1) * 100
            current = 0
        elif c == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = _CN_DIGITS[c]
    return str(total + current)


def normalise_address(address: str | None) -> str:
    """Comparable address: no province/city/district prefix, digits for numerals, 3栋2单元501室 -> 3-2-501."""
    value = _BRACKETS.sub("", basic(address or ""))
    value = re.sub(r"\s+", "", value)
    for _ in range(4):
        for prefix in ADDRESS_PREFIXES:
            if value.startswith(prefix):
                value = value[len(prefix):]
    value = _CN_NUMBER.sub(lambda m: _cn_number(m.group(0)), value)
    value = re.sub(r"(\d+)(?:号楼|栋|幢|座|#)", r"\1-", value)
    value = re.sub(r"(\d+)单元", r"\1-", value)
    value = re.sub(r"(\d+)(?:室|号房|房)", r"\1", value)
    value = re.sub(r"(\d+)[-—–~]+", r"\1-", value)
    value = _PUNCT.sub(lambda m: "-" if m.group(0).strip("-") == "" and "-" in m.group(0) else "", value)
    return value.strip("-")


def address_key(address: str | None) -> str | None:
    """The normalised address when it says enough to compare (>= 4 characters), else None."""
    value = normalise_address(address)
    return value if len(value) >= 4 else None
