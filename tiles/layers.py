"""The layer registry: one `LayerSpec` per map layer / feature collection.

Endpoints, queryables, TileJSON, SQL and cache keys all read this registry; a new layer (footprints, tasks) is one
`register(LayerSpec(...))` call here. Every column named below is a whitelist entry: request parameters can only
ever refer to these names. `where`, zoom filters and cluster counters are static SQL written here, never built
from a request.

PII rule: customers' identifiers are stored encrypted and never leave through this server; items carry masks only
(`phone_mask`, `id_number_mask`, `uscc_mask`), tiles carry no name, mask or address at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from geo_core.pois.service import CATEGORIES as POI_CATEGORIES

FIELD_TYPES = ("integer", "number", "string", "boolean", "datetime", "date")


@dataclass(frozen=True)
class Field:
    """A whitelisted column, exposed under its own name."""

    name: str
    type: str
    title: str = ""
    enum: tuple[str, ...] = ()
    as_text: bool = False  # enums: compared, sorted and encoded as text
    tile_zoom: int | None = None  # in vector tiles from this zoom on; None = items only
    item: bool = True  # in OGC items (False: tiles only, e.g. counters)

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name}: unknown type {self.type}")


@dataclass(frozen=True)
class ZoomFilter:
    """Below or at `max_zoom` a tile shows only rows matching `condition` (static SQL over alias t)."""

    max_zoom: int
    condition: str


@dataclass(frozen=True)
class Clustering:
    """Point thinning: tiles below `below_zoom` are always aggregated into `cells` x `cells` clusters per tile
    (with a count); from `below_zoom` on, a tile holding more than `max_points` raw points is aggregated the same
    way instead of being truncated, so no tile blows the byte budget and no map silently drops points."""

    below_zoom: int
    max_points: int
    cells: int = 32
    counters: tuple[tuple[str, str], ...] = ()  # (property, SQL condition over alias t): extra per-cluster counts
    # pre-aggregated z11 cluster grid (migration 0018, e.g. customer_cells): WGS84 tiles at z <= 11 sum its rows
    # instead of clustering the points - same counts and positions. Its counter columns, per counter name.
    cell_table: str | None = None
    cell_counters: tuple[tuple[str, str], ...] = ()

    CELL_ZOOM = 11  # the cell table's grid: 2^11 tiles x 32 cells per axis

    def __post_init__(self) -> None:
        if self.cell_table is not None and self.cells != 32:
            raise ValueError("a cell table is built on 32 x 32 cells per tile")


@dataclass(frozen=True)
class LayerSpec:
    name: str
    title: str
    description: str
    table: str
    geometry_type: str  # GeoJSON type of every geometry: "Point" or "MultiPolygon"
    permission: str
    fields: tuple[Field, ...]
    id_column: str = "id"
    geom_column: str = "geom"
    datetime_column: str = "updated_at"
    where: str = ""  # static SQL over alias t: rows that belong to the layer at all
    min_zoom: int = 0
    max_zoom: int = 18
    zoom_filters: tuple[ZoomFilter, ...] = ()
    clustering: Clustering | None = None
    scoped: bool = True  # False: the table has no row-level security (same rows for everyone)
    fingerprint: str = "count(*), max(t.updated_at)"  # cheap change detector, see tiles.cache
    # derived narrow table for raw-point tiles (migration 0021, e.g. customer_points): exactly the rows of `where`,
    # under the same RLS, with the id, EPSG:3857 `mx`/`my`, the POINT_CELL_ZOOM tile `cx`/`cy` (btree) and every
    # tile field in its tile form (enums and timestamps as text). The GCJ-02 path and clusters read `table`.
    point_table: str | None = None
    _by_name: dict[str, Field] = field(default_factory=dict, init=False, repr=False, compare=False)

    POINT_CELL_ZOOM = 18  # the point table's cx/cy grid: z18 tiles

    def __post_init__(self) -> None:
        self._by_name.update({f.name: f for f in self.fields})
        if self.point_table is not None and (not self.is_point or self.zoom_filters):
            raise ValueError(f"layer {self.name}: a point table serves point layers without zoom filters")

    def field(self, name: str) -> Field | None:
        return self._by_name.get(name)

    @property
    def item_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.item and f.name != self.id_column)

    def tile_fields(self, z: int) -> tuple[Field, ...]:
        return tuple(f for f in self.fields
                     if f.tile_zoom is not None and z >= f.tile_zoom and f.name != self.id_column)

    def zoom_filter(self, z: int) -> str:
        for rule in sorted(self.zoom_filters, key=lambda r: r.max_zoom):
            if z <= rule.max_zoom:
                return rule.condition
        return ""

    def clustered_at(self, z: int) -> bool:
        return self.clustering is not None and z < self.clustering.below_zoom

    @property
    def is_point(self) -> bool:
        return self.geometry_type == "Point"


LAYERS: dict[str, LayerSpec] = {}


def register(spec: LayerSpec) -> LayerSpec:
    if spec.name in LAYERS:
        raise ValueError(f"layer {spec.name} is registered twice")
    LAYERS[spec.name] = spec
    return spec


def get_layer(name: str) -> LayerSpec | None:
    return LAYERS.get(name)


def _ts(name: str = "updated_at", title: str = "最后修改时间") -> Field:
    return Field(name, "datetime", title)


GRID_LEVELS = ("city", "district", "township", "community", "building_group")

register(LayerSpec(
    name="grids",
    title="网格 Grids",
    description="Physical (city > district > township > community > building group) and virtual grids.",
    table="grids",
    geometry_type="MultiPolygon",
    permission="grid:read",
    fields=(
        Field("id", "integer", "编号", tile_zoom=0),
        Field("code", "string", "网格编码", tile_zoom=0),
        Field("name", "string", "名称", tile_zoom=0),
        Field("kind", "string", "类型", enum=("physical", "virtual"), as_text=True, tile_zoom=0),
        Field("level", "string", "层级", enum=GRID_LEVELS, as_text=True, tile_zoom=0),
        Field("virtual_type", "string", "虚拟网格类型", as_text=True, tile_zoom=0,
              enum=("industrial_park", "business_district", "industry", "supply_chain", "enterprise")),
        Field("business_line", "string", "条线", enum=("retail", "corporate", "micro"), as_text=True, tile_zoom=12),
        Field("status", "string", "状态", enum=("active", "inactive"), as_text=True, tile_zoom=12),
        Field("org_id", "integer", "所属机构", tile_zoom=12),
        Field("parent_id", "integer", "上级网格", tile_zoom=12),
        Field("division_code", "string", "区划代码", tile_zoom=12),
        Field("area_m2", "number", "面积（平方米）", tile_zoom=12),
        Field("households_estimate", "integer", "估计户数", tile_zoom=12),
        Field("version", "integer", "版本", tile_zoom=14),
        _ts(),
    ),
    where="t.geom IS NOT NULL",
    min_zoom=0,
    max_zoom=18,
    # polygons are thinned by level: the whole city's building groups in one z10 tile would be megabytes
    zoom_filters=(
        ZoomFilter(9, "t.level IN ('city', 'district')"),
        ZoomFilter(11, "t.level IS NULL OR t.level IN ('city', 'district', 'township')"),
        ZoomFilter(13, "t.level IS DISTINCT FROM 'building_group'"),
    ),
    fingerprint="count(*), max(t.updated_at), sum(t.version)",  # version: bumped by a trigger on every update
))

register(LayerSpec(
    name="customers",
    title="客户 Customers",
    description="Customer locations (一户一档). Tiles carry no name, identifier or address; below z12, and in any "
                "tile with more than 20,000 points, they are aggregated into clusters with counts.",
    table="customers",
    geometry_type="Point",
    permission="customer:read",
    fields=(
        Field("id", "integer", "编号", tile_zoom=0),
        Field("name", "string", "名称"),
        Field("customer_no", "string", "客户号"),
        Field("kind", "string", "类型", enum=("person", "company"), as_text=True, tile_zoom=12),
        Field("category", "string", "客户类别", enum=("formal", "potential"), as_text=True, tile_zoom=12),
        Field("profile_type", "string", "建档类型", enum=("farmer", "merchant", "micro_enterprise"), as_text=True,
              tile_zoom=12),
        Field("industry", "string", "行业"),
        Field("phone_mask", "string", "电话（脱敏）"),
        Field("id_number_mask", "string", "证件号码（脱敏）"),
        Field("uscc_mask", "string", "统一社会信用代码（脱敏）"),
        Field("location_source", "string", "位置来源", enum=("geocoded", "corrected", "gps", "imported"),
              as_text=True),
        Field("grid_id", "integer", "所在网格", tile_zoom=14),
        Field("org_id", "integer", "所属机构"),
        Field("owner_user_id", "integer", "管户客户经理"),
        Field("status", "string", "状态", enum=("active", "closed"), as_text=True, tile_zoom=14),
        _ts(),
    ),
    where="t.geom IS NOT NULL",
    min_zoom=0,
    max_zoom=18,
    clustering=Clustering(below_zoom=12, max_points=20_000, cells=32,
                          counters=(("formal", "t.category = 'formal'"),),
                          cell_table="customer_cells", cell_counters=(("formal", "n_formal"),)),
    point_table="customer_points",
    # the visible row count from the pre-aggregated cells (same RLS), the latest edit from an index: a few ms
    # instead of counting 2 million rows every GM_TILES_VERSION_TTL seconds
    fingerprint="(SELECT sum(n) FROM customer_cells), max(t.updated_at)",
))

register(LayerSpec(
    name="outlets",
    title="网点 Outlets",
    description="Bank outlets (level outlet) with a location.",
    table="orgs",
    geometry_type="Point",
    permission="org:read",
    geom_column="location",
    fields=(
        Field("id", "integer", "编号", tile_zoom=0),
        Field("code", "string", "机构编码", tile_zoom=0),
        Field("name", "string", "名称", tile_zoom=0),
        Field("parent_id", "integer", "上级机构", tile_zoom=12),
        Field("address", "string", "地址", tile_zoom=14),
        Field("is_active", "boolean", "启用"),
        _ts(),
    ),
    where="t.level = 'outlet' AND t.location IS NOT NULL",
    min_zoom=0,
    max_zoom=18,
    clustering=Clustering(below_zoom=8, max_points=20_000, cells=16),
))

register(LayerSpec(
    name="pois",
    title="经济单元 POIs",
    description="Economic units (POIs): merchants, communities, schools, ... Public to every user with poi:read.",
    table="pois",
    geometry_type="Point",
    permission="poi:read",
    fields=(
        Field("id", "integer", "编号", tile_zoom=0),
        Field("name", "string", "名称", tile_zoom=14),
        Field("category", "string", "类别", enum=tuple(POI_CATEGORIES), tile_zoom=12),
        Field("address", "string", "地址"),
        Field("phone", "string", "电话"),
        Field("source", "string", "来源"),
        Field("grid_id", "integer", "所在网格", tile_zoom=14),
        _ts(),
    ),
    min_zoom=0,
    max_zoom=18,
    clustering=Clustering(below_zoom=13, max_points=20_000, cells=32),
    scoped=False,
))
