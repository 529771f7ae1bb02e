from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from geo_core.db import Base, TimestampMixin


class ValueType(StrEnum):
    string = "string"
    integer = "integer"
    decimal = "decimal"
    boolean = "boolean"
    date = "date"


class DictType(TimestampMixin, Base):
    """A typed code table (参数设置), e.g. product status or channel."""

    __tablename__ = "dict_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    value_type: Mapped[ValueType] = mapped_column(Enum(ValueType, name="dict_value_type", native_enum=True))
    description: Mapped[str | None] = mapped_column(Text)
    is_system: Mapped[bool] = mapped_column(default=False, server_default="false")

    items: Mapped[list[DictItem]] = relationship(
        back_populates="dict_type", order_by="DictItem.sort_order", cascade="all, delete-orphan"
    )


class DictItem(TimestampMixin, Base):
    __tablename__ = "dict_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    type_id: Mapped[int] = mapped_column(ForeignKey("dict_types.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(100))
    value: Mapped[str | None] = mapped_column(String(200))
    sort_order: Mapped[int] = mapped_column(default=0, server_default="0")
    is_active: Mapped[bool] = mapped_column(default=True, server_default="true")

    dict_type: Mapped[DictType] = relationship(back_populates="items")

    __table_args__ = (UniqueConstraint("type_id", "code", name="uq_dict_items_type_code"),)
