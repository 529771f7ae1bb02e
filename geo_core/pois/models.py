from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.db import Base, TimestampMixin


class Poi(TimestampMixin, Base):
    """An economic unit / point of interest (经济单元): shop, market, factory, school ... Public data."""

    __tablename__ = "pois"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32), default="manual", server_default="manual")
    source_ref: Mapped[str | None] = mapped_column(String(100))
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    h3_r10: Mapped[int] = mapped_column(BigInteger)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id", ondelete="SET NULL"))

    __table_args__ = (
        UniqueConstraint("source", "source_ref", name="uq_pois_source_ref"),
        Index("ix_pois_geom", "geom", postgresql_using="gist"),
        Index("ix_pois_h3_r10", "h3_r10"),
        Index("ix_pois_grid_id", "grid_id"),
        Index("ix_pois_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
    )
