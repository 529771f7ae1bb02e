"""Demo grid hierarchy inside the real Changsha boundaries.

city > 9 districts (real boundaries) > townships (real names and codes; shapes are a Voronoi
partition of the district, since no open township boundaries exist) > communities/villages (real
names and codes, Voronoi partitions of their township) > building groups (city scale only). Partitions
tile their parent exactly, so the topology rules hold. Plus a few virtual grids.

Communities belong to outlets by territory: each outlet of a district serves a contiguous block of its
townships (all communities of a township share one outlet), as a bank's outlets split their area.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict

import shapely
from shapely.geometry import MultiPoint, MultiPolygon, Point, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo_core.grids.models import BusinessLine, Grid, GridKind, GridLevel, GridMember, VirtualType
from geo_core.grids.service import refresh_h3
from geo_core.orgs.models import Org, OrgLevel
from geo_core.seed.demo import DATA_DIR

SMALL_DISTRICTS = ("430102", "430104")  # communities only here at small scale (tests stay fast)


def _multi(geom: BaseGeometry) -> MultiPolygon | None:
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    polys = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon) and g.area > 1e-10]
    return MultiPolygon(polys) if polys else None


def _random_points(geom: BaseGeometry, n: int, rng: random.Random) -> list[Point]:
    minx, miny, maxx, maxy = geom.bounds
    prepared = prep(geom)
    points: list[Point] = []
    while len(points) < n:
        p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if prepared.contains(p):
            points.append(p)
    return points


def partition(geom: BaseGeometry, n: int, rng: random.Random) -> list[MultiPolygon]:
    """Split `geom` into n Voronoi cells clipped to it, in seed order (missing cells are dropped)."""
    if n <= 1:
        return [m for m in [_multi(geom)] if m]
    seeds = _random_points(geom, n, rng)
    cells = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=geom.envelope.buffer(0.01))
    by_seed = []
    for seed in seeds:
        cell = next(c for c in cells.geoms if c.contains(seed))
        part = _multi(cell.intersection(geom))
        if part is not None:
            by_seed.append(part)
    return by_seed


def _read(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def seed_grids(session: Session, scale: str = "small") -> int:
    rng = random.Random(4301)
    orgs = list(session.scalars(select(Org)))
    branch_by_adcode = {o.adcode: o for o in orgs if o.level is OrgLevel.branch}
    outlets = defaultdict(list)
    for o in orgs:
        if o.level is OrgLevel.outlet:
            outlets[o.adcode].append(o)
    head = next(o for o in orgs if o.level is OrgLevel.head_office)
    created: list[Grid] = []

    def add(**kw: object) -> Grid:
        geom = kw.pop("geom")
        grid = Grid(**kw)
        if geom is not None:
            grid.geom = func.ST_SetSRID(func.ST_GeomFromGeoJSON(json.dumps(mapping(geom))), 4326)
        session.add(grid)
        created.append(grid)
        return grid

    city_feat = json.loads((DATA_DIR / "changsha_city.geojson").read_text(encoding="utf-8"))["features"][0]
    city = add(code="G430100", name="长沙市", kind=GridKind.physical, level=GridLevel.city, org_id=head.id,
               division_code="430100", geom=_multi(shape(city_feat["geometry"])))
    session.flush()
    townships = defaultdict(list)
    for t in _read("changsha_townships.csv"):
        townships[t["district_code"]].append(t)
    villages = defaultdict(list)
    for v in _read("changsha_villages.csv"):
        villages[v["township_code"]].append(v)

    districts = json.loads((DATA_DIR / "changsha_districts.geojson").read_text(encoding="utf-8"))["features"]
    community_grids: list[Grid] = []
    for feat in districts:
        adcode = feat["properties"]["adcode"]
        dgeom = shape(feat["geometry"])
        branch = branch_by_adcode[adcode]
        district = add(code=f"G{adcode}", name=feat["properties"]["name"], kind=GridKind.physical,
                       level=GridLevel.district, org_id=branch.id, parent_id=city.id, division_code=adcode,
                       geom=_multi(dgeom))
        session.flush()
        towns = townships[adcode]
        # each outlet serves a contiguous block of townships (its territory), in the CSV's order
        n_outlets = len(outlets[adcode])
        for k, (town, tgeom) in enumerate(zip(towns, partition(dgeom, len(towns), rng), strict=False)):
            township = add(code=f"G{town['code']}", name=town["name"], kind=GridKind.physical,
                           level=GridLevel.township, org_id=branch.id, parent_id=district.id,
                           division_code=town["code"], geom=tgeom)
            session.flush()
            if scale == "small" and adcode not in SMALL_DISTRICTS:
                continue
            vills = villages[town["code"]]
            outlet = outlets[adcode][k * n_outlets // max(len(towns), 1)]
            for vill, vgeom in zip(vills, partition(tgeom, len(vills), rng), strict=False):
                community = add(code=f"G{vill['code']}", name=vill["short_name"] or vill["name"],
                                kind=GridKind.physical, level=GridLevel.community, org_id=outlet.id,
                                parent_id=township.id, division_code=vill["code"],
                                households_estimate=rng.randint(300, 1600), geom=vgeom)
                community_grids.append(community)
    session.flush()
    if scale == "city":
        for community in list(community_grids):
            cgeom = shape(json.loads(session.scalar(select(func.ST_AsGeoJSON(Grid.geom)).where(
                Grid.id == community.id))))
            for j, bgeom in enumerate(partition(cgeom, 12, rng), start=1):
                add(code=f"{community.code}-B{j:02d}", name=f"{community.name}第{j}组", kind=GridKind.physical,
                    level=GridLevel.building_group, org_id=community.org_id, parent_id=community.id,
                    households_estimate=rng.randint(40, 120), geom=bgeom)
        session.flush()
    _seed_virtual(session, add, branch_by_adcode, community_grids)
    session.flush()
    for grid in created:
        session.refresh(grid)
        refresh_h3(session, grid)
    return len(created)


def _seed_virtual(session: Session, add, branch_by_adcode, communities: list[Grid]) -> None:  # noqa: ANN001
    yuelu, furong = branch_by_adcode["430104"], branch_by_adcode["430102"]
    park = Polygon([(112.880, 28.170), (112.905, 28.170), (112.905, 28.190), (112.880, 28.190)])
    add(code="V-PARK-01", name="岳麓高新产业园", kind=GridKind.virtual, virtual_type=VirtualType.industrial_park,
        business_line=BusinessLine.corporate, org_id=yuelu.id, geom=MultiPolygon([park]))
    cbd = Point(112.985, 28.195).buffer(0.006, quad_segs=16)
    add(code="V-BIZ-01", name="五一广场商圈", kind=GridKind.virtual, virtual_type=VirtualType.business_district,
        business_line=BusinessLine.micro, org_id=furong.id, geom=MultiPolygon([cbd]))
    chain = add(code="V-CHAIN-01", name="湘菜食材供应链", kind=GridKind.virtual,
                virtual_type=VirtualType.supply_chain, business_line=BusinessLine.micro, org_id=furong.id,
                geom=None)
    session.flush()
    for community in [c for c in communities if c.org_id and str(c.code).startswith("G430102")][:5]:
        session.add(GridMember(grid_id=chain.id, member_grid_id=community.id))
