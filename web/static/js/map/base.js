// Shared Leaflet set-up for GridMarket map pages. No online base map: a plain background unless the
// page is given an explicit tile URL (data-tile-url, e.g. the bank's intranet tile server).

export const DATA_ATTRIBUTION = "© OpenStreetMap contributors (ODbL); boundaries via geoBoundaries";
export const CHANGSHA_CENTER = [28.228, 112.939];

/** Create the map in `container`, or return null (after saying why) when Leaflet is not loaded. */
export function createBaseMap(container, { center = CHANGSHA_CENTER, zoom = 9 } = {}) {
  const L = window.L;
  if (!L) {
    container.classList.add("map--unavailable");
    container.textContent = "地图组件未加载：请在项目根目录执行 npm ci --prefix web 后刷新页面。";
    return null;
  }
  const map = L.map(container, {
    center,
    zoom,
    minZoom: 6,
    maxZoom: 18,
    zoomSnap: 0.25,
    attributionControl: true,
  });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com" title="Leaflet">Leaflet</a>');
  map.attributionControl.addAttribution(DATA_ATTRIBUTION);
  L.control.scale({ imperial: false, position: "bottomleft" }).addTo(map);

  const tileUrl = container.dataset.tileUrl;
  if (tileUrl) {
    L.tileLayer(tileUrl, { attribution: container.dataset.tileAttribution || "", maxZoom: 18 }).addTo(map);
  }
  return map;
}

/** A pane stacked above the default overlay pane, so point layers stay clickable over polygons. */
export function createPane(map, name, zIndex) {
  const pane = map.createPane(name);
  pane.style.zIndex = String(zIndex);
  return name;
}

/** Hide permanent tooltips that would overlap one already shown; `layers` are in priority order. */
export function declutterTooltips(layers) {
  const placed = [];
  for (const layer of layers) {
    const tooltip = layer.getTooltip && layer.getTooltip();
    const node = tooltip && tooltip.getElement();
    if (!node) continue;
    node.classList.remove("is-hidden");
    const r = node.getBoundingClientRect();
    const overlaps = placed.some((p) => r.left < p.right && r.right > p.left && r.top < p.bottom && r.bottom > p.top);
    if (overlaps) node.classList.add("is-hidden");
    else placed.push(r);
  }
}
