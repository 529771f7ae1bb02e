"""Server-rendered page shells and the npm-provided vendor assets.

The pages carry no data: their JS modules call the public JSON API with the Bearer token kept in
sessionStorage. This blueprint needs nothing from the app beyond being registered.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, send_from_directory, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
NODE_MODULES = WEB_DIR / "node_modules"

# Only these npm package folders are reachable over HTTP (URL name -> directory).
VENDOR_DIRS: dict[str, Path] = {
    "leaflet": NODE_MODULES / "leaflet" / "dist",
    "swagger-ui": NODE_MODULES / "swagger-ui-dist",
    "leaflet-geoman": NODE_MODULES / "@geoman-io" / "leaflet-geoman-free" / "dist",
    "proj4": NODE_MODULES / "proj4" / "dist",
    "proj4leaflet": NODE_MODULES / "proj4leaflet" / "src",
}

# Online base maps of the grid editor (app config keys; each may also come from the env as GM_<KEY>).
# No tile is requested unless the user picks that base map. An empty URL (or, for Tianditu, no key)
# disables the choice. Point the URLs at an intranet tile proxy where the internet is not reachable.
MAP_CONFIG_DEFAULTS: dict[str, str] = {
    # 高德: GCJ-02, standard Web Mercator tiling; {s} = 1..4
    "MAP_GAODE_URL": "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8"
                     "&x={x}&y={y}&z={z}",
    # 百度: BD-09 on Baidu's own Mercator tile grid (y counts north from the equator); {s} = 0..3
    "MAP_BAIDU_URL": "https://maponline{s}.bdimg.com/tile/?qt=vtile&x={x}&y={y}&z={z}&styles=pl&scaler=1",
    # 天地图: WGS84 (CGCS2000) vector + labels in Web Mercator (vec_w, cva_w); needs a key; {s} = 0..7
    "MAP_TIANDITU_KEY": "",
    "MAP_TIANDITU_VEC_URL": "https://t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
                            "&LAYER=vec&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
                            "&TILECOL={x}&tk={tk}",
    "MAP_TIANDITU_CVA_URL": "https://t{s}.tianditu.gov.cn/cva_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
                            "&LAYER=cva&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
                            "&TILECOL={x}&tk={tk}",
}

# Admin table pages: URL entity -> page title. Columns and API paths live in web/static/js/admin-table.js.
SYSTEM_ENTITIES: dict[str, str] = {
    "orgs": "机构管理",
    "users": "用户管理",
    "roles": "角色管理",
    "permissions": "权限管理",
    "menus": "菜单管理",
    "dict": "数据字典",
    "devices": "设备管理",
    "audit": "审计日志",
}

SYSTEM_NAME = "网格化精准营销系统"
BANK_NAME = "长沙农商银行"

# The app's own static route owns /static/<path> (Flask adds it even when api/static does not exist),
# so the page assets are served under /assets.
bp = Blueprint(
    "pages",
    __name__,
    template_folder=str(WEB_DIR / "templates"),
    static_folder=str(WEB_DIR / "static"),
    static_url_path="/assets",
)


@bp.record_once
def _map_config_defaults(state: BlueprintSetupState) -> None:
    """Fill the optional base-map config keys: app config first, then GM_<KEY> from the env, then the default."""
    app: Flask = state.app
    for key, default in MAP_CONFIG_DEFAULTS.items():
        if app.config.get(key) is None:
            env = os.environ.get(f"GM_{key}")
            app.config[key] = (env if env is not None else default).strip()


def basemap_config() -> dict[str, Any]:
    """What web/static/js/map/basemaps.js needs to offer the online base maps (no secrets beyond the tile key)."""
    cfg = current_app.config
    tk = cfg.get("MAP_TIANDITU_KEY") or ""
    return {
        "gaode": {"url": cfg.get("MAP_GAODE_URL") or ""},
        "baidu": {"url": cfg.get("MAP_BAIDU_URL") or ""},
        "tianditu": {
            "key": tk,
            "vec_url": cfg.get("MAP_TIANDITU_VEC_URL") or "",
            "cva_url": cfg.get("MAP_TIANDITU_CVA_URL") or "",
        },
    }


@bp.context_processor
def inject_page_globals() -> dict[str, object]:
    """Names every page template of this blueprint may use."""
    return {"system_name": SYSTEM_NAME, "bank_name": BANK_NAME}


def vendor_available(package: str) -> bool:
    """True when the npm package folder behind /vendor/<package>/ is installed."""
    return VENDOR_DIRS[package].is_dir()


@bp.get("/vendor/<package>/<path:filename>")
def vendor(package: str, filename: str) -> ResponseReturnValue:
    """Serve a file of a whitelisted npm package; 404 for anything else or when node_modules is missing."""
    directory = VENDOR_DIRS.get(package)
    if directory is None or not directory.is_dir():
        abort(404)
    return send_from_directory(directory, filename)


@bp.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("pages.app_home"))


@bp.get("/login")
def login() -> ResponseReturnValue:
    return render_template("auth/login.html")


@bp.get("/app")
def app_home() -> ResponseReturnValue:
    return render_template("app/home.html", page_title="首页")


@bp.get("/app/map")
def app_map() -> ResponseReturnValue:
    return render_template(
        "app/map.html",
        page_title="网格地图",
        leaflet_missing=not vendor_available("leaflet"),
        # Optional base map (e.g. the bank's intranet tile server); none by default.
        tile_url=current_app.config.get("MAP_TILE_URL") or "",
        tile_attribution=current_app.config.get("MAP_TILE_ATTRIBUTION") or "",
    )


@bp.get("/app/grids")
def app_grids() -> ResponseReturnValue:
    missing = [p for p in ("leaflet", "leaflet-geoman", "proj4", "proj4leaflet") if not vendor_available(p)]
    return render_template("app/grids.html", page_title="网格管理", vendor_missing=missing,
                           basemaps=basemap_config())


@bp.get("/app/grids/balance")
def app_grid_balance() -> ResponseReturnValue:
    missing = [p for p in ("leaflet", "proj4", "proj4leaflet") if not vendor_available(p)]
    return render_template("app/grid_balance.html", page_title="网格平衡", vendor_missing=missing,
                           basemaps=basemap_config())


@bp.get("/app/grids/assistants")
def app_grid_assistants() -> ResponseReturnValue:
    return render_template("app/grid_assistants.html", page_title="网格三员")


@bp.get("/app/customers")
def app_customers() -> ResponseReturnValue:
    return render_template("app/customers.html", page_title="客户管理")


@bp.get("/app/customers/coverage")
def app_customer_coverage() -> ResponseReturnValue:
    return render_template("app/customer_coverage.html", page_title="建档与覆盖")


@bp.get("/app/customers/profile-tasks")
def app_customer_profile_tasks() -> ResponseReturnValue:
    return render_template("app/customer_profile_tasks.html", page_title="建档任务")


@bp.get("/app/customers/profile-templates")
def app_customer_profile_templates() -> ResponseReturnValue:
    return render_template("app/customer_profile_templates.html", page_title="建档模板")


@bp.get("/app/customers/duplicates")
def app_customer_duplicates() -> ResponseReturnValue:
    return render_template("app/customer_duplicates.html", page_title="重复客户")


@bp.get("/app/customers/<int:customer_id>")
def app_customer_detail(customer_id: int) -> ResponseReturnValue:
    missing = [p for p in ("leaflet", "proj4", "proj4leaflet") if not vendor_available(p)]
    return render_template("app/customer_detail.html", page_title="客户360视图", customer_id=customer_id,
                           vendor_missing=missing, basemaps=basemap_config())


@bp.get("/app/customers/import")
def app_customer_import() -> ResponseReturnValue:
    return render_template("app/customer_import.html", page_title="名单导入")


@bp.get("/app/customers/imports")
def app_customer_batches() -> ResponseReturnValue:
    return render_template("app/customer_batches.html", page_title="导入批次")


@bp.get("/app/customers/groups")
def app_customer_groups() -> ResponseReturnValue:
    missing = [p for p in ("leaflet", "leaflet-geoman") if not vendor_available(p)]
    return render_template("app/customer_groups.html", page_title="客群管理", vendor_missing=missing)


@bp.get("/app/customers/tags")
def app_customer_tags() -> ResponseReturnValue:
    return render_template("app/customer_tags.html", page_title="标签管理")


@bp.get("/app/customers/reminders")
def app_reminders() -> ResponseReturnValue:
    return render_template("app/reminders.html", page_title="客户提醒")


@bp.get("/app/customers/<int:customer_id>/profile")
def app_customer_profile(customer_id: int) -> ResponseReturnValue:
    return render_template("app/customer_profile.html", page_title="客户建档", customer_id=customer_id)


@bp.get("/app/system/<entity>")
def system_table(entity: str) -> ResponseReturnValue:
    title = SYSTEM_ENTITIES.get(entity)
    if title is None:
        abort(404)
    return render_template("system/admin_table.html", page_title=title, entity=entity)
