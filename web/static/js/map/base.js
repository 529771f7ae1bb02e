// Shared Leaflet set-up for GridMarket map pages. No online base map: a plain background unless the
// page is given an explicit tile URL (data-tile-url, e.g. the bank's intranet tile server).

export const DATA_ATTRIBUTION = "© OpenStreetMap contributors (ODbL); boundaries via geoBoundaries";
export const CHANGSHA_CENTER = [28.228, 112.939];

/** Create the map in `container`, or return null (after saying why) when Leaflet is not loaded. */
export function createBaseMap(container, { center = CHANGSHA_CENTER, zoom = 9 } = {}) {
  const L = window.L;
  if (!L) {
    container.classList.add("map--unavailable");
    container.textContent = "地图无法显示：地图组件 Leaflet 未加载。";
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

const overlapsAny = (r, placed) =>
  placed.some((p) => r.left < p.right && r.right > p.left && r.top < p.bottom && r.bottom > p.top);

/**
 * Keep permanent tooltips from overlapping: each label (in priority order) is nudged above, below or
 * beside its anchor when its own spot is taken, and hidden only when no spot is free.
 */
export function declutterTooltips(layers) {
  const placed = [];
  for (const layer of layers) {
    const tooltip = layer.getTooltip && layer.getTooltip();
    const node = tooltip && tooltip.getElement();
    if (!node) continue;
    node.classList.remove("is-hidden");
    node.style.marginLeft = "";
    node.style.marginTop = "";
    const r = node.getBoundingClientRect();
    const dx = r.width / 2 + 6;
    const dy = r.height + 2;
    const spot = [[0, 0], [0, -dy], [0, dy], [dx, 0], [-dx, 0]].find(([x, y]) => {
      const moved = { left: r.left + x, right: r.right + x, top: r.top + y, bottom: r.bottom + y };
      return !overlapsAny(moved, placed);
    });
    if (!spot) {
      node.classList.add("is-hidden");
      continue;
    }
    const [x, y] = spot;
    node.style.marginLeft = `${x}px`;
    node.style.marginTop = `${y}px`;
    placed.push({ left: r.left + x, right: r.right + x, top: r.top + y, bottom: r.bottom + y });
  }
}
