// Online base maps for the map pages, each with the coordinate system ("crs") its tiles are drawn in.
// Overlay data must be requested from the API in that crs (?crs=wgs84|gcj02|bd09) so it lines up.
//
//   none      无底图   WGS84, Web Mercator (L.CRS.EPSG3857), no tiles at all (default: works offline)
//   gaode     高德     GCJ-02 lon/lat, standard Web Mercator tiling (L.CRS.EPSG3857)
//   tianditu  天地图   WGS84 (CGCS2000) lon/lat, Web Mercator tiling (vec_w + cva_w), needs a `tk` key
//   baidu     百度     BD-09 lon/lat on Baidu's own Mercator ("BD09MC") and tile grid: see baiduCrs()
//
// URLs and the Tianditu key come from the page (app config, see api/pages.py); no tile is requested
// unless the user picks that base map.

const WEB_MERCATOR_ZOOMS = { minZoom: 3, maxZoom: 18 };

export const BASEMAPS = [
  { id: "none", label: "无底图", crs: "wgs84" },
  { id: "gaode", label: "高德", crs: "gcj02" },
  { id: "tianditu", label: "天地图", crs: "wgs84" },
  { id: "baidu", label: "百度", crs: "bd09" },
];

/** The base maps with `available` and, when not, `reason` (for the option tooltip). */
export function basemapChoices(config) {
  const cfg = config || {};
  return BASEMAPS.map((b) => {
    let reason = "";
    if (b.id === "gaode" && !(cfg.gaode && cfg.gaode.url)) reason = "未配置高德瓦片地址（MAP_GAODE_URL）";
    if (b.id === "baidu" && !(cfg.baidu && cfg.baidu.url)) reason = "未配置百度瓦片地址（MAP_BAIDU_URL）";
    if (b.id === "baidu" && !reason && !(window.L && window.L.Proj)) reason = "缺少 proj4leaflet 组件";
    if (b.id === "tianditu" && !(cfg.tianditu && cfg.tianditu.key)) reason = "未配置天地图密钥（MAP_TIANDITU_KEY）";
    return { ...b, available: !reason, reason };
  });
}

export function basemapById(id) {
  return BASEMAPS.find((b) => b.id === id) || BASEMAPS[0];
}

// Baidu Mercator as proj4 sees it: a Mercator on the Clarke 1866 ellipsoid. Baidu's own BD-09 -> BD09MC
// conversion is a piecewise polynomial; around Changsha this definition differs from it by < 1 m
// (checked against Baidu's LL2MC coefficients), far below a pixel at the zooms the tiles exist for.
const BAIDU_PROJ4 =
  "+proj=merc +a=6378206 +b=6356584.314245179 +lat_ts=0.0 +lon_0=0 +x_0=0 +y_0=0 +k=1.0 +units=m " +
  "+nadgrids=@null +wktext +no_defs";
const BAIDU_MAX_ZOOM = 19;
let baiduCrsCache = null;

/**
 * Baidu's tile grid: at zoom z one pixel is 2^(18-z) Baidu-Mercator metres, tiles are 256 px counted from
 * the origin (0, 0) (lon 0 on the equator), x growing east and y growing NORTH. Leaflet counts tile rows
 * southwards from the origin, so its row r is Baidu's row -r-1 (see BaiduTileLayer).
 */
export function baiduCrs() {
  const L = window.L;
  if (!baiduCrsCache) {
    const resolutions = Array.from({ length: BAIDU_MAX_ZOOM + 1 }, (_, z) => 2 ** (18 - z));
    baiduCrsCache = new L.Proj.CRS("BAIDU:BD09MC", BAIDU_PROJ4, {
      resolutions,
      origin: [0, 0],
      bounds: L.bounds([-20037726.37, -12474104.17], [20037726.37, 12474104.17]),
    });
  }
  return baiduCrsCache;
}

/** The Leaflet CRS a base map needs. */
export function leafletCrsFor(id) {
  return id === "baidu" ? baiduCrs() : window.L.CRS.EPSG3857;
}

function baiduTileLayer(L, url, options) {
  const BaiduTileLayer = L.TileLayer.extend({
    getTileUrl(coords) {
      const data = {
        s: this._getSubdomain(coords),
        x: coords.x,
        y: -coords.y - 1, // Leaflet rows grow southwards, Baidu's northwards from the equator
        z: this._getZoomForUrl(),
      };
      return L.Util.template(this._url, L.Util.extend(data, this.options));
    },
  });
  return new BaiduTileLayer(url, options);
}

/** The tile layers of a base map (empty for 无底图 or when it is not configured). */
export function createBaseLayers(id, config) {
  const L = window.L;
  const cfg = config || {};
  const common = { pane: "tilePane", className: `basemap-tile basemap-tile--${id}`, crossOrigin: false };
  if (id === "gaode" && cfg.gaode && cfg.gaode.url) {
    return [
      L.tileLayer(cfg.gaode.url, {
        ...common,
        ...WEB_MERCATOR_ZOOMS,
        subdomains: "1234",
        attribution: "© 高德地图 AutoNavi",
      }),
    ];
  }
  if (id === "tianditu" && cfg.tianditu && cfg.tianditu.key) {
    const opts = { ...common, ...WEB_MERCATOR_ZOOMS, subdomains: "01234567", tk: cfg.tianditu.key };
    return [
      L.tileLayer(cfg.tianditu.vec_url, { ...opts, attribution: "© 天地图 国家地理信息公共服务平台" }),
      L.tileLayer(cfg.tianditu.cva_url, opts),
    ];
  }
  if (id === "baidu" && cfg.baidu && cfg.baidu.url && L.Proj) {
    return [
      baiduTileLayer(L, cfg.baidu.url, {
        ...common,
        minZoom: 3,
        maxZoom: BAIDU_MAX_ZOOM,
        subdomains: "0123",
        attribution: "© 百度地图 Baidu",
      }),
    ];
  }
  return [];
}
