"""grids: physical/virtual hierarchy with PostGIS geometry, H3 cover, virtual members; scoped and audited

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from geo_core.types import Ltree
from migrations.sql_helpers import app_role, audit_table, enable_org_scope, grant_app

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ENUMS = {
    "grid_kind": ("physical", "virtual"),
    "grid_level": ("city", "district", "township", "community", "building_group"),
    "grid_virtual_type": ("industrial_park", "business_district", "industry", "supply_chain", "enterprise"),
    "business_line": ("retail", "corporate", "micro"),
    "grid_status": ("active", "inactive"),
}

FUNCTIONS = r"""
-- grid codes join the unique keys that may be probed across scopes
CREATE OR REPLACE FUNCTION gm_key_taken(p_key text, p_value text, p_own_id integer) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS
$$
BEGIN
  IF p_key NOT IN ('orgs.code', 'users.username', 'users.employee_no', 'devices.device_id', 'grids.code') THEN
    RAISE EXCEPTION 'key % cannot be probed', p_key;
  END IF;
  RETURN CASE p_key
    WHEN 'orgs.code' THEN EXISTS (SELECT 1 FROM orgs WHERE code = p_value AND id IS DISTINCT FROM p_own_id)
    WHEN 'users.username' THEN EXISTS (SELECT 1 FROM users WHERE username = p_value AND id IS DISTINCT FROM p_own_id)
    WHEN 'users.employee_no' THEN
      EXISTS (SELECT 1 FROM users WHERE employee_no = p_value AND id IS DISTINCT FROM p_own_id)
    WHEN 'devices.device_id' THEN
      EXISTS (SELECT 1 FROM devices WHERE device_id = p_value AND id IS DISTINCT FROM p_own_id)
    WHEN 'grids.code' THEN EXISTS (SELECT 1 FROM grids WHERE code = p_value AND id IS DISTINCT FROM p_own_id)
  END;
END
$$;

-- grids.path = parent's path + n<id>; area and version kept by trigger
CREATE FUNCTION gm_grids_before_write() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public AS
$$
DECLARE parent_path ltree;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.id <> OLD.id THEN
    RAISE EXCEPTION 'grid id cannot change' USING ERRCODE = 'check_violation';
  END IF;
  IF TG_OP = 'INSERT' OR NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN
    IF NEW.parent_id IS NULL THEN
      NEW.path := ('n' || NEW.id)::ltree;
    ELSE
      SELECT path INTO parent_path FROM grids WHERE id = NEW.parent_id;
      IF parent_path IS NULL THEN
        RAISE EXCEPTION 'parent grid % does not exist', NEW.parent_id USING ERRCODE = 'foreign_key_violation';
      END IF;
      IF TG_OP = 'UPDATE' AND parent_path <@ OLD.path THEN
        RAISE EXCEPTION 'a grid cannot be moved under itself' USING ERRCODE = 'check_violation';
      END IF;
      NEW.path := parent_path || ('n' || NEW.id)::ltree;
    END IF;
  END IF;
  IF TG_OP = 'INSERT' OR NEW.geom IS DISTINCT FROM OLD.geom THEN
    NEW.area_m2 := CASE WHEN NEW.geom IS NULL THEN NULL ELSE ST_Area(NEW.geom::geography) END;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    NEW.version := OLD.version + 1;
  END IF;
  RETURN NEW;
END
$$;

CREATE FUNCTION gm_grids_move_subtree() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public AS
$$ BEGIN
  UPDATE grids SET path = NEW.path || subpath(path, nlevel(OLD.path))
  WHERE path <@ OLD.path AND id <> NEW.id;
  RETURN NULL;
END $$;

CREATE TRIGGER grids_before_write BEFORE INSERT OR UPDATE ON grids FOR EACH ROW
  EXECUTE FUNCTION gm_grids_before_write();
CREATE TRIGGER grids_move_subtree AFTER UPDATE OF parent_id ON grids FOR EACH ROW
  WHEN (OLD.path IS DISTINCT FROM NEW.path) EXECUTE FUNCTION gm_grids_move_subtree();

-- Topology facts about a candidate geometry that need rows outside the caller's scope (parent,
-- siblings). Reveals only the codes/names and overlap shapes of conflicting grids.
CREATE FUNCTION gm_grid_topology(p_geom geometry, p_parent_id integer, p_exclude_id integer, p_tol_m2 double precision)
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$
  SELECT jsonb_build_object(
    'parent', (SELECT jsonb_build_object('id', p.id, 'code', p.code, 'kind', p.kind, 'level', p.level,
                                         'has_geom', p.geom IS NOT NULL,
                                         'outside_m2', CASE WHEN p.geom IS NULL THEN 0
                                           ELSE ST_Area(ST_Difference(p_geom, p.geom)::geography) END,
                                         'outside', CASE WHEN p.geom IS NULL THEN NULL
                                           ELSE ST_AsGeoJSON(ST_Difference(p_geom, p.geom), 7)::jsonb END)
               FROM grids p WHERE p.id = p_parent_id),
    'overlaps', coalesce((
      SELECT jsonb_agg(jsonb_build_object('id', s.id, 'code', s.code, 'name', s.name,
                                          'overlap_m2', round(s.a::numeric, 1),
                                          'overlap', ST_AsGeoJSON(s.g, 7)::jsonb) ORDER BY s.a DESC)
      FROM (SELECT g.id, g.code, g.name, ST_Intersection(g.geom, p_geom) AS g,
                   ST_Area(ST_Intersection(g.geom, p_geom)::geography) AS a
            FROM grids g
            WHERE g.kind = 'physical' AND g.status = 'active' AND g.geom && p_geom
              AND g.parent_id IS NOT DISTINCT FROM p_parent_id AND g.id IS DISTINCT FROM p_exclude_id
              AND ST_Intersects(g.geom, p_geom)) s
      WHERE s.a > p_tol_m2), '[]'::jsonb));
$$;

-- does anything still depend on this grid (children anywhere, members)? Counts only.
CREATE FUNCTION gm_grid_dependents(p_id integer) RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public AS
$$ SELECT jsonb_build_object('children', (SELECT count(*) FROM grids WHERE parent_id = p_id),
                             'members', (SELECT count(*) FROM grid_members WHERE grid_id = p_id)) $$;
"""


def upgrade() -> None:
    for name, values in ENUMS.items():
        postgresql.ENUM(*values, name=name).create(op.get_bind())

    def enum(name: str) -> postgresql.ENUM:
        return postgresql.ENUM(*ENUMS[name], name=name, create_type=False)

    op.create_table(
        "grids",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", enum("grid_kind"), nullable=False),
        sa.Column("level", enum("grid_level"), nullable=True),
        sa.Column("virtual_type", enum("grid_virtual_type"), nullable=True),
        sa.Column("business_line", enum("business_line"), nullable=False, server_default="retail"),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("grids.id", ondelete="RESTRICT"), nullable=True),
        sa.Column("path", Ltree(), server_default="", nullable=False),
        sa.Column("division_code", sa.String(12), nullable=True),
        sa.Column("geom", geoalchemy2.types.Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=True),
        sa.Column("area_m2", sa.Float(), nullable=True),
        sa.Column("households_estimate", sa.Integer(), nullable=True),
        sa.Column("status", enum("grid_status"), nullable=False, server_default="active"),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("updated_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(kind = 'physical' AND level IS NOT NULL AND virtual_type IS NULL AND geom IS NOT NULL)"
            " OR (kind = 'virtual' AND virtual_type IS NOT NULL AND level IS NULL)",
            name="kind_fields",
        ),
        sa.CheckConstraint("geom IS NULL OR ST_IsValid(geom)", name="geom_valid"),
    )
    op.create_index("ix_grids_geom", "grids", ["geom"], postgresql_using="gist")
    op.create_index("ix_grids_path", "grids", ["path"], postgresql_using="gist")
    op.create_index("ix_grids_org_id", "grids", ["org_id"])
    op.create_index("ix_grids_parent_id", "grids", ["parent_id"])
    op.create_index("ix_grids_name_trgm", "grids", ["name"], postgresql_using="gin",
                    postgresql_ops={"name": "gin_trgm_ops"})
    op.create_table(
        "grid_h3",
        sa.Column("grid_id", sa.Integer(), sa.ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("cell", sa.BigInteger(), primary_key=True),
        sa.Column("res", sa.SmallInteger(), nullable=False),
        sa.Column("is_interior", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_grid_h3_cell", "grid_h3", ["cell"])
    op.create_table(
        "grid_members",
        sa.Column("grid_id", sa.Integer(), sa.ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("member_grid_id", sa.Integer(), sa.ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.execute(FUNCTIONS)
    enable_org_scope("grids")
    # members and H3 cells follow the visibility of their grid
    for table in ("grid_members", "grid_h3"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_scope ON {table} USING ((SELECT gm_scope_all()) OR "
                   f"grid_id IN (SELECT id FROM grids))")
    for table in ("grids", "grid_h3", "grid_members"):
        grant_app(table)
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {app_role()}")
    op.execute("GRANT EXECUTE ON FUNCTION gm_grid_topology(geometry, integer, integer, double precision), "
               f"gm_grid_dependents(integer) TO {app_role()}")
    audit_table("grids")
    audit_table("grid_members", keys=("grid_id", "member_grid_id"))


def downgrade() -> None:
    op.drop_table("grid_members")
    op.drop_table("grid_h3")
    op.drop_table("grids")
    for fn in ("gm_grid_dependents(integer)", "gm_grid_topology(geometry, integer, integer, double precision)",
               "gm_grids_move_subtree()", "gm_grids_before_write()"):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    for name in ENUMS:
        op.execute(f"DROP TYPE IF EXISTS {name}")
