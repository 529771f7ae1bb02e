from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.db import Base, TimestampMixin


class KnownAddress(TimestampMixin, Base):
    """A normalised address key with its point: learnt from confirmed customer points and successful geocodes."""

    __tablename__ = "known_addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    address_key: Mapped[str] = mapped_column(String(300))
    address: Mapped[str] = mapped_column(String(300))
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    h3_r10: Mapped[int | None] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    last_hit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))


class GeocodeRun(TimestampMixin, Base):
    """One batch geocoding job: who asked, what for, progress, counts by matched level."""

    __tablename__ = "geocode_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    target: Mapped[str] = mapped_column(String(16))  # ids | batch | missing
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("customer_import_batches.id", ondelete="SET NULL"))
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="RESTRICT"))
    job_id: Mapped[str | None] = mapped_column(String(64))
    total: Mapped[int | None] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class GeocodeRunResult(Base):
    """What a run found for one customer (level, confidence, provider) and whether it was applied."""

    __tablename__ = "geocode_results"

    run_id: Mapped[int] = mapped_column(ForeignKey("geocode_runs.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    level: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    provider: Mapped[str] = mapped_column(String(16))
    applied: Mapped[bool] = mapped_column(Boolean)
    matched: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
