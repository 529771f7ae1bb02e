"""Customer lists (名单): templates, import batches, the sealed uploaded file and the saved list entries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, DateTime, Enum, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.customers.models import CustomerKind, ProfileType
from geo_core.db import Base, TimestampMixin


class ImportStatus(StrEnum):
    uploaded = "uploaded"  # file stored, header checked
    validated = "validated"  # every row checked; preview available
    running = "running"  # the import job holds the batch
    done = "done"  # written (all rows, or the valid ones with skip_invalid)
    failed = "failed"  # the job crashed or was killed; nothing written; may be submitted again
    rejected = "rejected"  # the job found invalid rows and skip_invalid was off; nothing written


class CustomerListTemplate(TimestampMixin, Base):
    """Columns of a list file: type, required, dictionary, regex, unique key, and the customer column each fills."""

    __tablename__ = "customer_list_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str | None] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    customer_kind: Mapped[CustomerKind] = mapped_column(Enum(CustomerKind, name="customer_kind", native_enum=True))
    profile_type: Mapped[ProfileType | None] = mapped_column(Enum(ProfileType, name="profile_type",
                                                                  native_enum=True))
    crs: Mapped[str] = mapped_column(String(8), default="wgs84")
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    is_builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id", ondelete="RESTRICT"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class CustomerImportBatch(TimestampMixin, Base):
    """One uploaded list file and what became of it."""

    __tablename__ = "customer_import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    template_id: Mapped[int] = mapped_column(ForeignKey("customer_list_templates.id", ondelete="RESTRICT"))
    template_snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB)
    importer_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="RESTRICT"))
    status: Mapped[ImportStatus] = mapped_column(Enum(ImportStatus, name="customer_import_status",
                                                      native_enum=True), default=ImportStatus.uploaded)
    filename: Mapped[str] = mapped_column(String(255))
    file_size: Mapped[int] = mapped_column(Integer)
    file_sha256: Mapped[str] = mapped_column(String(64))
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    valid_rows: Mapped[int | None] = mapped_column(Integer)
    invalid_rows: Mapped[int | None] = mapped_column(Integer)
    matched_rows: Mapped[int | None] = mapped_column(Integer)
    created_rows: Mapped[int | None] = mapped_column(Integer)
    skipped_rows: Mapped[int | None] = mapped_column(Integer)
    skip_invalid: Mapped[bool] = mapped_column(Boolean, default=False)
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(64))
    validated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CustomerImportFile(Base):
    """The uploaded file, SM4-sealed (it holds identifiers in clear)."""

    __tablename__ = "customer_import_files"

    batch_id: Mapped[int] = mapped_column(ForeignKey("customer_import_batches.id", ondelete="CASCADE"),
                                          primary_key=True)
    data_enc: Mapped[bytes] = mapped_column(LargeBinary)


class CustomerListEntry(Base):
    """A row of an imported list: the customer it matched or created (the list group campaigns use)."""

    __tablename__ = "customer_list_entries"

    batch_id: Mapped[int] = mapped_column(ForeignKey("customer_import_batches.id", ondelete="CASCADE"),
                                          primary_key=True)
    row_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    matched: Mapped[bool] = mapped_column(Boolean)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
