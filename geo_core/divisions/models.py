from __future__ import annotations

from enum import StrEnum

from geoalchemy2 import Geometry
from sqlalchemy import Enum, Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.db import Base


class DivisionLevel(StrEnum):
    city = "city"
    district = "district"  # 区/县/县级市 (6-digit GB/T 2260 code)
    township = "township"  # 街道/镇/乡 (9-digit statistical code)
    village = "village"  # 社区/村 (12-digit statistical code)


class AdminDivision(Base):
    """Administrative divisions (reference data, not org-scoped). Geometry where openly licensed."""

    __tablename__ = "admin_divisions"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    short_name: Mapped[str | None] = mapped_column(String(100))
    name_en: Mapped[str | None] = mapped_column(String(100))
    level: Mapped[DivisionLevel] = mapped_column(Enum(DivisionLevel, name="division_level", native_enum=True))
    kind: Mapped[str | None] = mapped_column(String(16))  # 街道/镇/乡/社区/村 ...
    parent_code: Mapped[str | None] = mapped_column(String(12))
    area_km2: Mapped[float | None] = mapped_column(Float)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=True)
    source: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        Index("ix_admin_divisions_geom", "geom", postgresql_using="gist"),
        Index("ix_admin_divisions_parent", "parent_code"),
        Index("ix_admin_divisions_level", "level"),
        Index("ix_admin_divisions_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
    )
