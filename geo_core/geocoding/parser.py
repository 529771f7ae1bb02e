"""Chinese address parsing (pure Python): 省/市/区县/街道·镇·乡/社区·村/组, then 路·街·巷 + 号/栋/单元/室.

Division names come from a `DivisionIndex` built from the admin_divisions rows (never a hard-coded list). The
parser normalises the text (NFKC: full-width digits and letters, brackets; a few traditional forms; Chinese
numerals before 栋/单元/组/号/室/段/楼/层), drops noise (labels such as "地址：", spaces, punctuation, bracketed
remarks, "附近"), then walks the text left to right taking the longest division alias consistent with what it
already found (a township must lie in the district found, a community in the township; statistical codes are
hierarchical, so this is a code-prefix test). Missing levels are tolerated: "芙蓉区识字里社区" finds the township
through the community. Abbreviated district names ("芙蓉" for 芙蓉区) are accepted unless a road suffix follows
("芙蓉中路" is a road). What is left is parsed into road, house number, place (a compound or building name),
building, unit, floor and room.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

LEVELS = ("city", "district", "township", "village")
_RANK = {level: i for i, level in enumerate(LEVELS)}
_CODE_LEN = {"city": 4, "district": 6, "township": 9, "village": 12}  # significant prefix length

_TRADITIONAL = str.maketrans({"號": "号", "棟": "栋", "樓": "楼", "區": "区", "縣": "县", "鎮": "镇", "鄉": "乡",
                              "這": "这", "單": "单", "門": "门", "層": "层", "—": "-", "–": "-", "－": "-",
                              "~": "-", "〇": "零", "長": "长", "灣": "湾", "華": "华", "園": "园", "廣": "广",
                              "東": "东", "興": "兴", "開": "开", "陽": "阳", "嶽": "岳", "寧": "宁", "雲": "云",
                              "馬": "马", "龍": "龙", "橋": "桥", "鳳": "凤"})
_LABEL = re.compile(r"^(?:[\u4e00-\u9fff]{0,4}地址|住址|地点|位置)\s*[:：]")
_BRACKETS = re.compile(r"[(\[【（][^)\]】）]*[)\]】）]")
_NOISE_CHARS = re.compile(r"[\s,，。.;；、/\\|'\"“”‘’:：!！?？*]+")
_TRAILING_NOISE = re.compile(r"(?:附近|旁边|旁|对面|隔壁|周边|一带|往里走|内)+$")
_PROVINCE = re.compile(r"^[\u4e00-\u9fff]{2,7}?(?:省|自治区|特别行政区)")
_CN_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_NUMBER = re.compile(r"([零一二两三四五六七八九十百]+)(?=栋|幢|单元|组|号|室|段|楼|层|座|期)")
# a township we do not know (renamed, misspelt): skipped if a known community follows it
_UNKNOWN_TOWNSHIP = re.compile(r"[\u4e00-\u9fff]{1,6}(?:街道办事处|街道|镇|乡)")
_ROAD_GUARD = re.compile(r"^[东南西北中]?[一二三四五六七八九十\d]*(?:路|街(?!道)|大道|巷)")

_ROAD = re.compile(r"(?P<road>[\u4e00-\u9fffA-Z\d]{1,12}?(?:大道|大街|路|街(?!道|办)|巷|弄|胡同))"
                   r"(?P<section>\d+段)?")
_GROUP = re.compile(r"^(?P<group>\d+)(?:组|村民小组)")
_HOUSE = re.compile(r"^(?P<no>\d+(?:-\d+)?)(?:号|#(?![栋楼幢\d]))(?:院)?")
_BUILDING = re.compile(r"(?P<building>[A-Z]?\d+[A-Z]?)(?:栋|幢|号楼|座|#楼|#栋|#)")
_UNIT = re.compile(r"(?P<unit>\d+)单元")
_FLOOR = re.compile(r"(?P<floor>\d+)(?:楼|层)(?!\d*栋)")
_ROOM = re.compile(r"(?P<room>\d{3,5})(?:室|房|号房|号)?$")
_PLACE = re.compile(r"^(?P<place>[\u4e00-\u9fffA-Z]*[\u4e00-\u9fff][\u4e00-\u9fffA-Z\d]*?)"
                    r"(?=[A-Z]?\d+[A-Z]?(?:栋|幢|号楼|座|#|单元|楼|层|室|号)|$)")


def cn_to_int(text: str) -> int | None:
    """Small Chinese numerals (up to 999): 三 -> 3, 十二 -> 12, 二十 -> 20, 一百零五 -> 105."""
    if not text:
        return None
    if all(c in _CN_DIGITS for c in text):  # digit by digit: 一零五 -> 105
        return int("".join(str(_CN_DIGITS[c]) for c in text))
    total, current = 0, 0
    for char in text:
        if char in _CN_DIGITS:
            current = _CN_DIGITS[char]
        elif char == "十":
            total += (current or 1) * 10
            current = 0
        elif char == "百":
            total += (current or 1) * 100
            current = 0
        else:
            return None
    return total + current


def normalise(raw: str, *, keep_breaks: bool = False) -> str:
    """NFKC, traditional forms, Chinese numerals before units, labels, brackets and punctuation removed.

    keep_breaks: punctuation and spaces become one space (the parser uses them as token boundaries)."""
    text = unicodedata.normalize("NFKC", raw or "").translate(_TRADITIONAL).upper().strip()
    text = _BRACKETS.sub("", text)
    text = _LABEL.sub("", text)
    text = _NOISE_CHARS.sub(" " if keep_breaks else "", text).strip()
    text = _CN_NUMBER.sub(lambda m: str(cn_to_int(m.group(1)) if cn_to_int(m.group(1)) is not None
                                        else m.group(1)), text)
    text = _TRAILING_NOISE.sub("", text).strip()
    return text


@dataclass(frozen=True)
class Division:
    code: str
    name: str
    level: str  # city | district | township | village
    short_name: str | None = None
    kind: str | None = None  # 街道/镇/乡/社区/村 ...

    def contains(self, other: Division) -> bool:
        """True if `other` lies inside this division (hierarchical statistical codes)."""
        prefix = self.code[:_CODE_LEN[self.level]]
        return _RANK[other.level] > _RANK[self.level] and other.code.startswith(prefix)


def _aliases(d: Division, city_aliases: set[str]) -> set[str]:
    names = {d.name}
    if d.short_name:
        names.add(d.short_name)
    if d.level == "city" and d.name.endswith("市") and len(d.name) > 2:
        names.add(d.name[:-1])
    elif d.level == "district" and d.name[-1:] in "区县市" and len(d.name) > 2:
        if d.name[:-1] not in city_aliases:  # 长沙县 must not become 长沙
            names.add(d.name[:-1])
    elif d.level == "township" and d.name.endswith("街道"):
        names |= {d.name + "办事处", d.name + "办", d.name[:-2] + "街办"}
    elif d.level == "village":
        short = d.short_name or d.name
        for suffix in ("居委会", "居民委员会", "村委会", "村民委员会"):
            names.add(short + suffix)
    return {n for n in names if len(n) >= 2}


class DivisionIndex:
    """Alias -> divisions lookup over the admin_divisions rows (city, district, township, village)."""

    def __init__(self, divisions: Iterable[Division]) -> None:
        self.by_code: dict[str, Division] = {}
        rows = [d for d in divisions if d.level in _RANK]
        city_aliases = {d.name for d in rows if d.level == "city"} | {
            d.name[:-1] for d in rows if d.level == "city" and d.name.endswith("市")}
        self.aliases: dict[str, list[Division]] = {}
        self.abbreviations: set[tuple[str, str]] = set()  # (alias, code) pairs that are abbreviations
        for d in rows:
            self.by_code[d.code] = d
            for alias in _aliases(d, city_aliases):
                self.aliases.setdefault(alias, []).append(d)
                if d.level == "district" and alias != d.name:
                    self.abbreviations.add((alias, d.code))
        self.max_len = max((len(a) for a in self.aliases), default=0)
        self.city_aliases = {a for a, ds in self.aliases.items() if any(d.level == "city" for d in ds)}

    def __len__(self) -> int:
        return len(self.by_code)


@dataclass
class ParsedAddress:
    raw: str
    normalised: str
    province: str | None = None
    city: Division | None = None
    district: Division | None = None
    township: Division | None = None
    village: Division | None = None
    ambiguous: list[Division] = field(default_factory=list)  # same-named divisions we could not tell apart
    group: int | None = None
    road: str | None = None
    house_no: str | None = None
    locality: str | None = None  # a name written before the road (四方坪 in 四方坪德雅路1288号)
    place: str | None = None
    building: str | None = None
    unit: int | None = None
    floor: int | None = None
    room: str | None = None
    rest: str = ""

    @property
    def finest(self) -> Division | None:
        return self.village or self.township or self.district or self.city

    @property
    def division_level(self) -> str | None:
        d = self.finest
        return d.level if d else None

    def key(self) -> str | None:
        """Canonical key of a door-level address (for known_addresses), or None if the text is not that precise.

        Road + number (with place and building), or community/village + group/number, or district + place."""
        area = (self.district or self.city)
        area_code = area.code if area else ""
        building = self.building or ""
        if self.road and self.house_no:
            return f"R|{area_code}|{self.road}|{self.house_no}|{self.place or ''}|{building}"
        if self.village and (self.group is not None or self.house_no or self.place or self.building):
            return f"V|{self.village.code}|{self.group or ''}|{self.house_no or ''}|{self.place or ''}|{building}"
        if self.place and area_code:
            return f"P|{area_code}|{self.road or ''}|{self.place}|{building}"
        return None

    def building_free_key(self) -> str | None:
        """The key without the building (same compound / house number): a coarser exact-address match."""
        if not self.building:
            return None
        saved, self.building = self.building, None
        try:
            return self.key()
        finally:
            self.building = saved

    def as_dict(self) -> dict[str, object]:
        def div(d: Division | None) -> dict[str, str] | None:
            return {"code": d.code, "name": d.short_name or d.name, "level": d.level} if d else None

        return {"normalised": self.normalised, "province": self.province, "city": div(self.city),
                "district": div(self.district), "township": div(self.township), "village": div(self.village),
                "ambiguous": [div(d) for d in self.ambiguous], "group": self.group, "road": self.road,
                "house_no": self.house_no, "locality": self.locality, "place": self.place,
                "building": self.building, "unit": self.unit, "floor": self.floor, "room": self.room,
                "rest": self.rest or None}


class AddressParser:
    def __init__(self, index: DivisionIndex) -> None:
        self.index = index

    def parse(self, raw: str) -> ParsedAddress:
        text = normalise(raw, keep_breaks=True)
        result = ParsedAddress(raw=raw, normalised=text.replace(" ", ""))
        province = _PROVINCE.match(text)
        if province:
            result.province = province.group(0)
            text = text[province.end():].lstrip()
        text = self._divisions(text, result)
        self._details(text, result)
        return result

    # -- divisions -------------------------------------------------------------------------------------------------

    def _found(self, result: ParsedAddress) -> list[Division]:
        return [d for d in (result.city, result.district, result.township, result.village) if d is not None]

    def _consistent(self, d: Division, result: ParsedAddress) -> bool:
        found = self._found(result)
        if found and _RANK[d.level] <= max(_RANK[f.level] for f in found):
            return False
        return all(f.contains(d) for f in found)

    def _match_at(self, text: str, pos: int, result: ParsedAddress) -> tuple[int, list[Division]] | None:
        for length in range(min(self.index.max_len, len(text) - pos), 1, -1):
            alias = text[pos:pos + length]
            candidates = [d for d in self.index.aliases.get(alias, ()) if self._consistent(d, result)]
            candidates = [d for d in candidates if not ((alias, d.code) in self.index.abbreviations
                                                         and _ROAD_GUARD.match(text[pos + length:].lstrip()))]
            if candidates:
                finest = max(_RANK[d.level] for d in candidates)
                return length, [d for d in candidates if _RANK[d.level] == finest]
        return None

    def _divisions(self, text: str, result: ParsedAddress) -> str:
        pos = 0
        if self._match_at(text, 0, result) is None:  # e.g. 湖南长沙…: skip an unsuffixed province name
            for skip in range(1, min(5, len(text))):
                if any(text.startswith(a, skip) for a in self.index.city_aliases):
                    if re.fullmatch(r"[\u4e00-\u9fff]+", text[:skip]):
                        result.province = result.province or text[:skip]
                    else:
                        result.rest += text[:skip]
                    pos = skip
                    break
        while pos < len(text):
            if text[pos] == " ":
                pos += 1
                continue
            match = self._match_at(text, pos, result)
            if match is None:
                skipped = self._unknown_township(text, pos, result)
                if skipped is None:
                    break
                result.rest += text[pos:skipped]
                pos = skipped
                continue
            length, candidates = match
            pos += length
            if len(candidates) == 1:
                self._set(result, candidates[0])
            else:
                self._set_common_ancestor(result, candidates)
        return text[pos:]

    def _unknown_township(self, text: str, pos: int, result: ParsedAddress) -> int | None:
        """End of an unknown 某某街道/镇/乡 at pos when a known division follows it (renamed or misspelt)."""
        if result.township is not None:
            return None
        for end in range(pos + 2, min(pos + 10, len(text))):
            chunk = text[pos:end]
            if _UNKNOWN_TOWNSHIP.fullmatch(chunk) and self._match_at(text, end, result) is not None:
                return end
        return None

    def _set(self, result: ParsedAddress, d: Division) -> None:
        setattr(result, d.level, d)
        # infer the levels above from the codes (a community names its township and district)
        for level in ("district", "township"):
            if _RANK[level] < _RANK[d.level] and getattr(result, level) is None:
                code = d.code[:_CODE_LEN[level]]
                parent = self.index.by_code.get(code)
                if parent is not None and parent.level == level:
                    setattr(result, level, parent)

    def _set_common_ancestor(self, result: ParsedAddress, candidates: list[Division]) -> None:
        result.ambiguous = candidates
        for level in ("township", "district"):
            n = _CODE_LEN[level]
            prefixes = {d.code[:n] for d in candidates}
            if len(prefixes) == 1:
                parent = self.index.by_code.get(prefixes.pop())
                if parent is not None and parent.level == level and self._consistent(parent, result):
                    self._set(result, parent)
                return

    # -- road, number, place, building, unit, room -------------------------------------------------------------------

    def _details(self, text: str, result: ParsedAddress) -> None:
        text = text.strip()
        m = _GROUP.match(text)
        if m:
            result.group = int(m.group("group"))
            text = text[m.end():].lstrip()
        m = _ROAD.match(text) or _ROAD.search(text)
        if m:
            before = text[:m.start()].replace(" ", "")
            result.road = m.group("road") + (m.group("section") or "")
            text = text[m.end():]
            if before:
                result.locality = before
        text = text.replace(" ", "")
        m = _HOUSE.match(text)
        if m:
            result.house_no = m.group("no")
            text = text[m.end():]
        m = _PLACE.match(text)
        if m and m.group("place"):
            result.place = m.group("place")
            text = text[m.end():]
        if result.place and not result.road and not result.house_no:
            m = _HOUSE.match(text)  # 某某村45号
            if m:
                result.house_no = m.group("no")
                text = text[m.end():]
        for pattern, attr in ((_BUILDING, "building"), (_UNIT, "unit"), (_FLOOR, "floor"), (_ROOM, "room")):
            m = pattern.search(text)
            if m:
                value = m.group(attr)
                setattr(result, attr, int(value) if attr in ("unit", "floor") else value)
                text = text[:m.start()] + text[m.end():]
        if result.house_no is None and result.group is not None:
            m = _HOUSE.match(text)
            if m:
                result.house_no = m.group("no")
                text = text[m.end():]
        result.rest += text


def parse_address(index: DivisionIndex, raw: str) -> ParsedAddress:
    return AddressParser(index).parse(raw)
