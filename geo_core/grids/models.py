from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
)
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.db import Base, TimestampMixin
from geo_core.types import Ltree


class GridKind(StrEnum):
    physical = "physical"
    virtual = "virtual"


class GridLevel(StrEnum):
    city = "city"
    district = "district"  # 区/县
    township = "township"  # 街道/乡镇
    community = "community"  # 社区/村
    building_group = "building_group"  # 楼盘/组


LEVEL_ORDER = list(GridLevel)


class VirtualType(StrEnum):
    industrial_park = "industrial_park"  # 园区
    business_district = "business_district"  # 商圈
    industry = "industry"  # 垂直行业
    supply_chain = "supply_chain"  # 供应链
    enterprise = "enterprise"  # 企业


class BusinessLine(StrEnum):
    retail = "retail"  # 零售
    corporate = "corporate"  # 公司
    micro = "micro"  # 小微


class GridStatus(StrEnum):
    active = "active"
    inactive = "inactive"


class Grid(TimestampMixin, Base):
    """A marketing grid: a physical area in the administrative hierarchy or a virtual grouping."""

    __tablename__ = "grids"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[GridKind] = mapped_column(Enum(GridKind, name="grid_kind", native_enum=True))
    level: Mapped[GridLevel | None] = mapped_column(Enum(GridLevel, name="grid_level", native_enum=True))
    virtual_type: Mapped[VirtualType | None] = mapped_column(
        Enum(VirtualType, name="grid_virtual_type", native_enum=True)
    )
    business_line: Mapped[BusinessLine] = mapped_column(
        Enum(BusinessLine, name="business_line", native_enum=True), default=BusinessLine.retail
    )
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="RESTRICT"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id", ondelete="RESTRICT"))
    path: Mapped[str] = mapped_column(Ltree, server_default="", nullable=False)
    division_code: Mapped[str | None] = mapped_column(String(12))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=True)
    area_m2: Mapped[float | None] = mapped_column(Float)
    households_estimate: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[GridStatus] = mapped_column(
        Enum(GridStatus, name="grid_status", native_enum=True), default=GridStatus.active
    )
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    __table_args__ = (
        Index("ix_grids_geom", "geom", postgresql_using="gist"),
        Index("ix_grids_path", "path", postgresql_using="gist"),
        Index("ix_grids_org_id", "org_id"),
        Index("ix_grids_parent_id", "parent_id"),
        Index("ix_grids_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
    )


grid_h3 = Table(
    "grid_h3",
    Base.metadata,
    Column("grid_id", Integer, ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True),
    Column("cell", BigInteger, primary_key=True),
    Column("res", SmallInteger, nullable=False),
    Column("is_interior", Boolean, nullable=False),
    Index("ix_grid_h3_cell", "cell"),
)


class GridMember(Base):
    """A member of a virtual grid without a polygon: another grid (customers join in the customers issue)."""

    __tablename__ = "grid_members"

    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True)
    member_grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=datetime.now)
