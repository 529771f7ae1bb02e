"""Server-rendered page shells and the npm-provided vendor assets.

The pages carry no data: their JS modules call the public JSON API with the Bearer token kept in
sessionStorage. This blueprint needs nothing from the app beyond being registered.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, redirect, render_template, send_from_directory, url_for
from flask.typing import ResponseReturnValue

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
NODE_MODULES = WEB_DIR / "node_modules"

# Only these npm package folders are reachable over HTTP (URL name -> directory).
VENDOR_DIRS: dict[str, Path] = {
    "leaflet": NODE_MODULES / "leaflet" / "dist",
    "swagger-ui": NODE_MODULES / "swagger-ui-dist",
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


@bp.get("/app/system/<entity>")
def system_table(entity: str) -> ResponseReturnValue:
    title = SYSTEM_ENTITIES.get(entity)
    if title is None:
        abort(404)
    return render_template("system/admin_table.html", page_title=title, entity=entity)
