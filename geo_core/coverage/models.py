"""Daily coverage indicator snapshots (the indicators over time)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.db import Base


class CoverageSnapshot(Base):
    """Coverage indicators of one grid / org / manager (or the bank total, key 0) on one day."""

    __tablename__ = "coverage_snapshots"

    day: Mapped[date] = mapped_column(primary_key=True)
    level: Mapped[str] = mapped_column(String(10), primary_key=True)
    key: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(100))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
