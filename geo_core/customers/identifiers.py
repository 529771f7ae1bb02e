"""Chinese identifiers: validation with checksums, normalisation, masking.

- Resident ID card number (GB 11643-1999): 17 digits + check character (0-9 or X), ISO 7064 MOD 11-2.
- Unified social credit code (GB 32100-2015): 18 characters from a 31-symbol alphabet, MOD 31 check.
- Phone: mainland mobile (1[3-9] + 9 digits) or a landline with area code (e.g. 0731-88888888).
"""

from __future__ import annotations

import re
from datetime import date

ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK = "10X98765432"
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
MOBILE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")


def id_check_char(first17: str) -> str:
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def normalise_id_number(raw: str) -> str:
    """The 18-character ID number, upper-case X; ValueError with a reason if invalid."""
    value = raw.strip().replace(" ", "").upper()
    if not re.fullmatch(r"\d{17}[\dX]", value):
        raise ValueError("身份证号须为 18 位（最后一位可为 X）")
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as exc:
        raise ValueError("身份证号中的出生日期无效") from exc
    if id_check_char(value[:17]) != value[17]:
        raise ValueError("身份证号校验位错误")
    return value


def birth_date_of(id_number: str) -> date:
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def gender_of(id_number: str) -> str:
    return "M" if int(id_number[16]) % 2 else "F"


def uscc_check_char(first17: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def normalise_uscc(raw: str) -> str:
    value = raw.strip().replace(" ", "").upper()
    if len(value) != 18 or any(c not in USCC_ALPHABET for c in value):
        raise ValueError("统一社会信用代码须为 18 位数字或大写字母（不含 I、O、Z、S、V）")
    if uscc_check_char(value[:17]) != value[17]:
        raise ValueError("统一社会信用代码校验位错误")
    return value


def normalise_phone(raw: str) -> str:
    value = re.sub(r"[\s()]", "", raw.strip())
    if value.startswith("+86"):
        value = value[3:]
    if MOBILE.fullmatch(value):
        return value
    if LANDLINE.fullmatch(value):
        return value.replace("-", "")
    raise ValueError("电话须为 11 位手机号或带区号的固定电话")


def mask(value: str, keep_head: int, keep_tail: int) -> str:
    if len(value) <= keep_head + keep_tail:
        return "*" * len(value)
    return value[:keep_head] + "*" * (len(value) - keep_head - keep_tail) + value[-keep_tail:]


def mask_id_number(value: str) -> str:
    return mask(value, 3, 4)  # 430***********1234


def mask_phone(value: str) -> str:
    return mask(value, 3, 4)  # 138****5678


def mask_uscc(value: str) -> str:
    return mask(value, 4, 4)
