// 网格地图: Changsha districts (GeoJSON from /api/v1/divisions) and outlets (/api/v1/orgs/geojson).
import { api, ApiError, el, formatNumber, initLayout, ORG_LEVEL_LABELS, reportError, showPageAlert } from "./common.js";
import { createBaseMap, createPane, declutterTooltips } from "./map/base.js";

const DISTRICT_COLORS = [
  "#5b8ff9", "#5ad8a6", "#f6bd16", "#e8684a", "#6dc8ec", "#9270ca", "#ff9d4d", "#269a99", "#ff99c3",
];
const DISTRICT_STYLE = { color: "#51606f", weight: 1.2, opacity: 0.9, fillOpacity: 0.32 };
const DISTRICT_HOVER = { color: "#1f2d3a", weight: 2.5, fillOpacity: 0.55 };
const OUTLET_STYLE = { radius: 4.5, color: "#ffffff", weight: 1.5, fillColor: "#c8102e", fillOpacity: 0.95 };

const container = document.getElementById("map");
const stats = document.getElementById("map-stats");

function popupTable(title, rows) {
  return el(
    "div",
    { class: "map-popup" },
    el("div", { class: "map-popup__title" }, title),
    el("table", {}, el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v ?? "—"))))),
  );
}

function districtLayer(L, collection) {
  const features = (collection.features || []).filter((f) => f && f.geometry);
  const order = features.map((f) => String(f.properties.adcode)).sort();
  const colorOf = (f) => DISTRICT_COLORS[order.indexOf(String(f.properties.adcode)) % DISTRICT_COLORS.length];
  const layer = L.geoJSON(
    { type: "FeatureCollection", features },
    {
      style: (f) => ({ ...DISTRICT_STYLE, fillColor: colorOf(f) }),
      onEachFeature: (f, lyr) => {
        const p = f.properties || {};
        lyr.bindTooltip(el("span", {}, p.name || String(p.adcode)), {
          permanent: true,
          direction: "center",
          className: "district-label",
        });
        lyr.bindPopup(
          () =>
            popupTable(p.name, [
              ["行政区划代码", p.adcode],
              ["英文名", p.name_en],
              ["面积", p.area_km2 != null ? `${formatNumber(p.area_km2, 1)} km²` : null],
            ]),
        );
        lyr.on({
          mouseover: (e) => {
            e.target.setStyle(DISTRICT_HOVER);
            e.target.bringToFront();
          },
          mouseout: (e) => layer.resetStyle(e.target),
        });
      },
    },
  );
  return layer;
}

function outletLayer(L, collection, pane) {
  return L.geoJSON(collection, {
    filter: (f) => f && f.geometry && f.geometry.type === "Point",
    pointToLayer: (f, latlng) => L.circleMarker(latlng, { ...OUTLET_STYLE, pane }),
    onEachFeature: (f, lyr) => {
      const p = f.properties || {};
      lyr.bindPopup(() =>
        popupTable(p.name, [
          ["机构代码", p.code],
          ["机构层级", ORG_LEVEL_LABELS[p.level] || p.level],
        ]),
      );
    },
  });
}

function setStats(districts, outlets) {
  const parts = [];
  if (districts != null) parts.push(`区县 ${districts} 个`);
  if (outlets != null) parts.push(`营业网点 ${outlets} 个`);
  stats.textContent = parts.join(" · ");
}

/** One alert line per failed layer request (a 401 has already sent us to /login). */
function reportLoadErrors(results) {
  const failed = results.filter(([, r]) => r.status === "rejected");
  if (!failed.length || failed.some(([, r]) => r.reason && r.reason.redirecting)) return;
  failed.forEach(([, r]) => console.error(r.reason));
  const text = (err) => (err instanceof ApiError ? err.message : "网络异常，请稍后重试");
  showPageAlert(failed.map(([what, r]) => `${what}：${text(r.reason)}`).join("；"));
}

async function main() {
  const layoutReady = initLayout();
  const map = createBaseMap(container);
  if (!map) {
    container.dataset.state = "error";
    await layoutReady;
    return;
  }
  const L = window.L;
  const outletPane = createPane(map, "outlets", 450);
  const control = L.control.layers(null, null, { collapsed: false, position: "topright" }).addTo(map);

  const [districtRes, outletRes] = await Promise.allSettled([
    api("/api/v1/divisions", { query: { level: "district" } }),
    api("/api/v1/orgs/geojson", { query: { level: "outlet" } }),
  ]);

  let districtCount = null;
  if (districtRes.status === "fulfilled") {
    const districts = districtLayer(L, districtRes.value).addTo(map);
    districtCount = districts.getLayers().length;
    control.addOverlay(districts, "区县边界");
    if (districtCount) map.fitBounds(districts.getBounds(), { padding: [12, 12] });
    const byArea = districts.getLayers().sort(
      (a, b) => (b.feature.properties.area_km2 || 0) - (a.feature.properties.area_km2 || 0),
    );
    const declutter = () => declutterTooltips(byArea);
    map.on("zoomend moveend", declutter);
    map.whenReady(declutter);
    container.dataset.state = "ready";
  } else {
    container.dataset.state = "error";
  }

  let outletCount = null;
  if (outletRes.status === "fulfilled") {
    const outlets = outletLayer(L, outletRes.value, outletPane).addTo(map);
    outletCount = outlets.getLayers().length;
    control.addOverlay(outlets, "营业网点");
  }
  setStats(districtCount, outletCount);
  reportLoadErrors([
    ["加载区县边界失败", districtRes],
    ["加载营业网点失败", outletRes],
  ]);
  await layoutReady;
}

main().catch((err) => {
  container.dataset.state = "error";
  reportError(err);
});
