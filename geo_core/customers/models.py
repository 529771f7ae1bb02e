from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from geoalchemy2 import Geometry
from sqlalchemy import ARRAY, BigInteger, DateTime, Enum, ForeignKey, LargeBinary, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.db import Base, TimestampMixin


class CustomerKind(StrEnum):
    person = "person"
    company = "company"


class CustomerCategory(StrEnum):
    formal = "formal"  # has accounts at the bank
    potential = "potential"


class LocationSource(StrEnum):
    geocoded = "geocoded"
    corrected = "corrected"  # moved on the map by a manager (纠偏)
    gps = "gps"  # from a visit
    imported = "imported"


class ProfileType(StrEnum):
    farmer = "farmer"  # 农户
    merchant = "merchant"  # 商户
    micro_enterprise = "micro_enterprise"  # 小微企业


class CustomerStatus(StrEnum):
    active = "active"
    closed = "closed"
    merged = "merged"  # merged into another archive (merged_into), kept so the merge can be undone (0016)


def _enum(cls: type[StrEnum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=True)


class Customer(TimestampMixin, Base):
    """One archive per customer (一户一档). Identifiers are stored SM4-encrypted, searchable by blind index."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[CustomerKind] = mapped_column(_enum(CustomerKind, "customer_kind"))
    category: Mapped[CustomerCategory] = mapped_column(_enum(CustomerCategory, "customer_category"))
    name: Mapped[str] = mapped_column(String(100))
    customer_no: Mapped[str | None] = mapped_column(String(32), unique=True)
    profile_type: Mapped[ProfileType | None] = mapped_column(_enum(ProfileType, "profile_type"))
    gender: Mapped[str | None] = mapped_column(String(1))
    birth_date: Mapped[date | None] = mapped_column()
    industry: Mapped[str | None] = mapped_column(String(64))
    id_number_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_number_bidx: Mapped[str | None] = mapped_column(String(64))
    id_number_mask: Mapped[str | None] = mapped_column(String(32))
    uscc_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    uscc_bidx: Mapped[str | None] = mapped_column(String(64))
    uscc_mask: Mapped[str | None] = mapped_column(String(32))
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_bidx: Mapped[str | None] = mapped_column(String(64))
    phone_mask: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(300))
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=True)
    h3_r10: Mapped[int | None] = mapped_column(BigInteger)
    location_source: Mapped[LocationSource | None] = mapped_column(_enum(LocationSource, "location_source"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id", ondelete="SET NULL"))
    grid_override_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    grid_override_reason: Mapped[str | None] = mapped_column(String(200))
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="RESTRICT"))
    status: Mapped[CustomerStatus] = mapped_column(_enum(CustomerStatus, "customer_status"),
                                                  default=CustomerStatus.active)
    # holdings summary from the big-data platform's daily feed (migration 0011); NULL = unknown
    deposit_balance: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    loan_balance: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    credit_limit: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))  # 授信额度
    overdue_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    products: Mapped[list[str] | None] = mapped_column(ARRAY(String(32)))
    holdings_as_of: Mapped[date | None] = mapped_column()
    last_visit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))  # 0016
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
