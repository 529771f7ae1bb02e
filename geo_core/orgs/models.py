from __future__ import annotations

from enum import StrEnum

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.db import Base, TimestampMixin
from geo_core.types import Ltree


class OrgLevel(StrEnum):
    head_office = "head_office"
    branch = "branch"
    sub_branch = "sub_branch"
    outlet = "outlet"


# which levels may sit directly under which
ALLOWED_PARENT = {
    OrgLevel.head_office: (),
    OrgLevel.branch: (OrgLevel.head_office,),
    OrgLevel.sub_branch: (OrgLevel.head_office, OrgLevel.branch, OrgLevel.sub_branch),
    OrgLevel.outlet: (OrgLevel.head_office, OrgLevel.branch, OrgLevel.sub_branch),
}


class Org(TimestampMixin, Base):
    """An organisation unit of the bank. `path` (ltree of `n<id>` labels) is kept by a trigger."""

    __tablename__ = "orgs"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[OrgLevel] = mapped_column(Enum(OrgLevel, name="org_level", native_enum=True))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id", ondelete="RESTRICT"))
    path: Mapped[str] = mapped_column(Ltree, server_default="", nullable=False)
    adcode: Mapped[str | None] = mapped_column(String(12))
    address: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=True)
    h3_r10: Mapped[int | None] = mapped_column(BigInteger)  # kept by the point placement job
    is_active: Mapped[bool] = mapped_column(default=True, server_default="true")

    __table_args__ = (
        Index("ix_orgs_path_gist", "path", postgresql_using="gist"),
        Index("ix_orgs_location_gist", "location", postgresql_using="gist"),
        Index("ix_orgs_parent_id", "parent_id"),
    )

    @property
    def depth(self) -> int:
        return len(str(self.path).split(".")) if self.path else 0
