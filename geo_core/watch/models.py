from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.db import Base, TimestampMixin

TARGET_TYPES = ("grid", "poi", "org")


class WatchItem(TimestampMixin, Base):
    """我的关注 / 自由标注: a free marker on the map, or a followed grid, POI or outlet."""

    __tablename__ = "watch_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    target_type: Mapped[str | None] = mapped_column(String(16))
    target_id: Mapped[int | None] = mapped_column()
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=True)
    h3_r10: Mapped[int | None] = mapped_column(BigInteger)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id", ondelete="SET NULL"))
