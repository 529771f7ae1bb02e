// The optional drawn range (圈选范围) of a customer group: a Leaflet map (vendored, no base-map tiles needed) with
// the district boundaries and outlets for orientation and one polygon drawn with leaflet-geoman. The polygon is
// sent as GeoJSON in WGS84 (definition.polygon, crs "wgs84"); the API validates it like a grid geometry.
import { api } from "./common.js";
import { createBaseMap } from "./map/base.js";

const STYLE = { color: "#c8102e", weight: 2, fillOpacity: 0.12 };

/** createPolygonMap(container, onChange) -> {value(), set(geometry), draw(), clear()} or null without Leaflet. */
export function createPolygonMap(container, onChange) {
  const map = createBaseMap(container, { zoom: 10 });
  if (!map || !map.pm) return null;
  const L = window.L;
  container.gmMap = map; // for the end-to-end test, which draws at known coordinates
  map.pm.setLang("zh");
  let shape = null;

  const changed = () => {
    container.dataset.polygon = shape ? "true" : "false";
    onChange();
  };
  const keep = (layer) => {
    if (shape && shape !== layer) map.removeLayer(shape);
    shape = layer;
    shape.setStyle(STYLE);
    shape.on("pm:edit", changed);
  };
  map.on("pm:create", (e) => {
    keep(e.layer);
    changed();
  });

  Promise.allSettled([api("/api/v1/divisions", { query: { level: "district" } }),
    api("/api/v1/orgs/geojson", { query: { level: "outlet" } })]).then(([districts, outlets]) => {
    if (districts.status === "fulfilled") {
      const layer = L.geoJSON(districts.value, {
        style: { color: "#64748b", weight: 1, fillOpacity: 0.03 }, interactive: false, pmIgnore: true,
      }).addTo(map);
      if (layer.getLayers().length && !shape) map.fitBounds(layer.getBounds());
      layer.bringToBack();
    }
    if (outlets.status === "fulfilled") {
      L.geoJSON(outlets.value, { pmIgnore: true, interactive: false,
        pointToLayer: (_f, latlng) => L.circleMarker(latlng, { radius: 3, color: "#0f6b4f", weight: 1, fillOpacity: 0.8 }),
      }).addTo(map);
    }
    container.dataset.ready = "true";
  });
  setTimeout(() => map.invalidateSize(), 0);

  return {
    map,
    value: () => (shape ? shape.toGeoJSON().geometry : null),
    set(geometry) {
      if (shape) map.removeLayer(shape);
      shape = null;
      if (geometry) {
        const layer = L.geoJSON(geometry).getLayers()[0];
        if (layer) {
          layer.addTo(map);
          keep(layer);
          map.fitBounds(layer.getBounds(), { maxZoom: 15 });
        }
      }
      container.dataset.polygon = shape ? "true" : "false";
    },
    draw() {
      map.pm.enableDraw("Polygon", { allowSelfIntersection: false, pathOptions: STYLE });
    },
    edit() {
      if (shape) shape.pm.toggleEdit();
    },
    clear() {
      map.pm.disableDraw();
      if (shape) map.removeLayer(shape);
      shape = null;
      changed();
    },
    refresh: () => map.invalidateSize(),
  };
}
