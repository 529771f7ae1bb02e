// Maps of the 网格平衡 page: one map (调整前 or 调整后) or two side by side with synced views. Grids (or, in the
// 网格内客户 mode, customer points) are coloured
// by their manager before / after the proposal, moved grids are outlined, locked grids dashed, grids outside the
// household norm carry a badge. Base maps come from map/basemaps.js; the data is requested by the page in the
// base map's crs, so it lines up with the tiles.
import { el, formatNumber } from "./common.js";
import { createBaseMap, declutterTooltips } from "./map/base.js";
import { createBaseLayers, leafletCrsFor } from "./map/basemaps.js";

// Tableau 10 plus two: distinguishable side by side; colours repeat after 12 managers.
export const PALETTE = [
  "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2",
  "#edc948", "#9c755f", "#ff9da7", "#1b9e77", "#7570b3", "#bab0ac",
];
const STYLE = {
  plain: { color: "#52606d", weight: 1.2, fillColor: "#cfd8e0", fillOpacity: 0.35 },
  parent: { color: "#52606d", weight: 2, dashArray: "6 5", fill: false, interactive: false },
  unit: { color: "#ffffff", weight: 1.4, fillOpacity: 0.55 },
  moved: { color: "#111827", weight: 3.5 },
  locked: { color: "#111827", weight: 2.5, dashArray: "7 5" },
};

/**
 * Two maps in `containers` ([left, right]); the right one is only shown side by side. onGridClick(id) is
 * called when a grid is clicked (the page locks / unlocks it). Returns null when Leaflet is missing.
 */
export function createBalanceMaps(containers, { onGridClick }) {
  const maps = containers.map((c) => createBaseMap(c, { zoom: 11 }));
  if (!maps[0]) return null;
  const L = window.L;
  const groups = maps.map((m) => L.featureGroup().addTo(m));
  const baseLayers = maps.map(() => []);
  let syncing = false;
  maps.forEach((m, i) => {
    const other = maps[1 - i];
    m.on("move", () => {
      if (syncing || !other || !containers[1 - i].offsetParent) return;
      syncing = true;
      other.setView(m.getCenter(), m.getZoom(), { animate: false });
      syncing = false;
    });
    m.on("zoomend moveend", () => declutterTooltips(groups[i].getLayers()));
  });

  function polygon(i, feature, style, labelText, labelClass) {
    const layer = L.GeoJSON.geometryToLayer(feature, style);
    layer.feature = feature;
    const id = feature.properties.grid_id || feature.properties.id || feature.id;
    if (labelText) {
      layer.bindTooltip(labelText, {
        permanent: true, direction: "center", className: `ge-label gb-label ${labelClass || ""}`, interactive: false,
      });
    }
    if (style.interactive !== false) layer.on("click", () => onGridClick(id));
    groups[i].addLayer(layer);
    return layer;
  }

  return {
    maps,
    /** Swap the Leaflet CRS and tiles of both maps for base map `id`. */
    setBasemap(id, config) {
      maps.forEach((m, i) => {
        baseLayers[i].forEach((layer) => layer.remove());
        const crs = leafletCrsFor(id);
        if (crs !== m.options.crs) {
          m.options.crs = crs;
          m.setView(m.getCenter(), m.getZoom(), { animate: false, reset: true });
        }
        baseLayers[i] = createBaseLayers(id, config);
        baseLayers[i].forEach((layer) => layer.addTo(m));
      });
      return baseLayers.flat();
    },
    /** Before a proposal: the parent's outline and its children in grey (clickable to lock). */
    drawPlain(parent, children, locked) {
      groups.forEach((g) => g.clearLayers());
      maps.forEach((m, i) => {
        if (parent && parent.geometry) polygon(i, { type: "Feature", geometry: parent.geometry, properties: {} }, STYLE.parent);
        for (const f of children) {
          const isLocked = locked.has(f.properties.id);
          const style = { ...STYLE.plain, ...(isLocked ? STYLE.locked : {}),
            className: `gb-shape gb-code-${f.properties.code}${isLocked ? " is-locked" : ""}` };
          polygon(i, f, style, isLocked ? `${f.properties.name}（锁定）` : f.properties.name);
        }
      });
    },
    /**
     * A proposal: map 0 shows `views[0]` ("before" | "after"), map 1 "after". colours: user id -> colour,
     * names: user id -> name, flags: grid id -> flag text.
     */
    drawProposal(features, { views, colours, names, flags, locked, parent }) {
      groups.forEach((g) => g.clearLayers());
      views.forEach((side, i) => {
        if (parent && parent.geometry) polygon(i, { type: "Feature", geometry: parent.geometry, properties: {} }, STYLE.parent);
        for (const f of features) {
          const p = f.properties;
          const owner = p[side];
          const moved = p.before !== p.after;
          const isLocked = locked.has(p.grid_id);
          const style = {
            ...STYLE.unit, fillColor: colours.get(owner) || "#adb5bd",
            ...(moved && side === "after" ? STYLE.moved : {}), ...(isLocked ? STYLE.locked : {}),
            className: `gb-shape gb-code-${p.code} gb-side-${side}${moved ? " is-moved" : ""}${isLocked ? " is-locked" : ""}`,
          };
          const flag = flags.get(p.grid_id);
          const text = el("span", {}, el("b", {}, p.name), isLocked ? "（锁定）" : "", el("br"),
            names.get(owner) || "—", moved && side === "after" ? `（原 ${names.get(p.before) || "—"}）` : "",
            flag ? [el("br"), el("span", { class: "gb-flag" }, flag)] : null);
          polygon(i, f, style, text, flag ? "gb-label--flag" : "");
        }
      });
    },
    /**
     * Customers of one grid as points coloured by their manager before / after (map 0 shows `views[0]`, map 1
     * "after"); moved points get a black ring on the "after" side, locked ones a dashed ring. onPointClick(id).
     */
    drawPoints(features, { views, colours, names, locked, outline, onPointClick }) {
      groups.forEach((g) => g.clearLayers());
      views.forEach((side, i) => {
        if (outline && outline.geometry) {
          polygon(i, { type: "Feature", geometry: outline.geometry, properties: {} }, STYLE.parent);
        }
        for (const f of features) {
          const p = f.properties;
          const [lon, lat] = f.geometry.coordinates;
          const owner = p[side];
          const moved = p.before !== p.after && side === "after";
          const isLocked = locked.has(p.customer_id);
          const layer = L.circleMarker([lat, lon], {
            radius: p.kind === "company" ? 6.5 : 5, fillColor: colours.get(owner) || "#adb5bd", fillOpacity: 0.9,
            color: moved || isLocked ? "#111827" : "#ffffff", weight: moved ? 2.5 : isLocked ? 2 : 1,
            dashArray: isLocked ? "3 2" : null,
            className: `gbc-point gbc-id-${p.customer_id} gb-side-${side}${moved ? " is-moved" : ""}${isLocked ? " is-locked" : ""}`,
          });
          layer.bindTooltip(`${p.name}${p.kind === "company" ? "（对公）" : ""} · ${names.get(owner) || "—"}`
            + `${moved ? `（原 ${names.get(p.before) || "—"}）` : ""} · 存贷款 ${formatNumber(p.value / 1e4, 1)} 万元`
            + `${isLocked ? " · 锁定" : ""}`, { direction: "top" });
          layer.on("click", () => onPointClick(p.customer_id));
          groups[i].addLayer(layer);
        }
      });
    },
    /** Fit both maps to what is drawn. */
    fit() {
      const bounds = groups[0].getLayers().length ? groups[0].getBounds() : null;
      maps.forEach((m, i) => {
        m.invalidateSize({ animate: false });
        if (bounds && bounds.isValid()) m.fitBounds(bounds, { padding: [24, 24], animate: false, maxZoom: 16 });
        declutterTooltips(groups[i].getLayers());
      });
    },
    relayout() {
      maps.forEach((m, i) => {
        m.invalidateSize({ animate: false });
        declutterTooltips(groups[i].getLayers());
      });
      if (maps[1] && containers[1].offsetParent) maps[1].setView(maps[0].getCenter(), maps[0].getZoom(), { animate: false });
    },
  };
}

/** "户数偏多 1,476" style text for a flag of the preview. */
export function flagText(flag, range) {
  const [low, high] = range || [];
  const what = flag.flag === "too_small" ? "户数偏少" : "户数偏多";
  const bound = flag.flag === "too_small" ? low : high;
  return `${what} ${formatNumber(flag.households)}${bound ? `（${flag.flag === "too_small" ? "<" : ">"} ${formatNumber(bound)}）` : ""}`;
}
