// The small map of the customer 360 view: the customer's point (and his grid's outline) on the chosen base map,
// and 纠偏 — drag the marker, then save. Coordinates are always exchanged with the API in the base map's crs
// (?crs=wgs84|gcj02|bd09), so the point lines up with the tiles; the API stores WGS84. Works with no tiles at all.
import { api, el, formatNumber } from "./common.js";
import { CHANGSHA_CENTER, createBaseMap } from "./map/base.js";
import { basemapById, basemapChoices, createBaseLayers, leafletCrsFor } from "./map/basemaps.js";
import { failed, toast } from "./grid-ui.js";

const CRS_LABELS = { wgs84: "WGS84", gcj02: "GCJ-02（火星坐标）", bd09: "BD-09（百度坐标）" };

/**
 * Set up the map in `container`. opts: {customerId, canEdit, config (base map config), onLocation(section),
 * onSaved(section)}. Returns {show(location section)} or null without Leaflet.
 */
export function createCustomerMap(container, opts) {
  const map = createBaseMap(container, { center: CHANGSHA_CENTER, zoom: 14 });
  if (!map) return null;
  const L = window.L;
  const select = document.getElementById("cu-basemap");
  const hint = document.getElementById("cu-map-hint");
  const saveBtn = document.getElementById("cu-loc-save");
  const cancelBtn = document.getElementById("cu-loc-cancel");
  const state = { basemap: "none", crs: "wgs84", location: null, marker: null, gridLayer: null, baseLayers: [] };

  for (const choice of basemapChoices(opts.config)) {
    select.append(el("option", {
      value: choice.id, disabled: !choice.available, title: choice.reason || `${choice.label}（${CRS_LABELS[choice.crs]}）`,
    }, choice.available ? choice.label : `${choice.label}（未配置）`));
  }
  select.value = state.basemap;

  const markerIcon = (moved) => L.divIcon({
    className: "", html: `<div class="cu-marker${moved ? " cu-marker--moved" : ""}"></div>`, iconSize: [18, 18],
    iconAnchor: [9, 9],
  });

  function setHint() {
    const loc = state.location;
    if (!loc || !loc.has_point) {
      if (!(state.marker && state.marker.moved)) {
        hint.textContent = opts.canEdit ? "暂无坐标 · 在地图上点击可放置客户位置" : "暂无坐标";
        saveBtn.hidden = true;
        cancelBtn.hidden = true;
        return;
      }
    }
    const moved = state.marker && state.marker.moved;
    const ll = state.marker.getLatLng();
    const where = `${formatNumber(ll.lng, 6)}, ${formatNumber(ll.lat, 6)}（${CRS_LABELS[state.crs]}）`;
    hint.textContent = moved ? `新位置：${where}` : `${where}${opts.canEdit ? " · 拖动标记可纠偏" : ""}`;
    saveBtn.hidden = !moved;
    cancelBtn.hidden = !moved;
  }

  async function drawGrid(gridId) {
    if (state.gridLayer) state.gridLayer.remove();
    state.gridLayer = null;
    if (!gridId) return;
    try {
      const grid = await api(`/api/v1/grids/${gridId}`, { query: { crs: state.crs } });
      if (!grid || !grid.geometry) return;
      state.gridLayer = L.geoJSON(grid.geometry, {
        style: { color: "#0f6b4f", weight: 2, fillColor: "#0f6b4f", fillOpacity: 0.08, dashArray: "5 4" },
        interactive: false,
      }).addTo(map);
      state.gridLayer.bringToBack();
    } catch {
      /* a grid outside my scope shows no outline; the point still shows */
    }
  }

  function show(loc) {
    state.location = loc;
    if (state.marker) state.marker.remove();
    state.marker = null;
    if (loc && loc.has_point) {
      state.marker = L.marker([loc.lat, loc.lon], {
        icon: markerIcon(false), draggable: Boolean(opts.canEdit), autoPan: true, keyboard: false, title: "客户位置",
      }).addTo(map);
      state.marker.getElement().classList.add("cu-marker-el");
      state.marker.on("dragend", () => {
        state.marker.moved = true;
        state.marker.setIcon(markerIcon(true));
        container.dataset.moved = "true";
        setHint();
      });
      map.setView([loc.lat, loc.lon], Math.max(map.getZoom(), 15), { animate: false });
    }
    container.dataset.moved = "false";
    container.dataset.crs = state.crs;
    container.dataset.point = loc && loc.has_point ? `${loc.lon},${loc.lat}` : "";
    setHint();
    drawGrid(loc && loc.grid ? loc.grid.id : null);
    container.dataset.state = "ready";
  }

  async function reloadLocation() {
    const body = await api(`/api/v1/customers/${opts.customerId}/360`, {
      query: { sections: "location", crs: state.crs },
    });
    const loc = body.sections.location;
    opts.onLocation(loc);
    show(loc);
  }

  function addBaseLayers() {
    state.baseLayers.forEach((layer) => layer.remove());
    state.baseLayers = createBaseLayers(state.basemap, opts.config);
    let warned = false;
    for (const layer of state.baseLayers) {
      layer.on("tileerror", () => {
        if (warned) return;
        warned = true;
        toast("底图瓦片加载失败（网络不可达或地址有误），客户位置不受影响。", "info", 6000);
      });
      layer.addTo(map);
    }
  }

  select.addEventListener("change", async () => {
    const choice = basemapById(select.value);
    container.dataset.state = "loading";
    select.disabled = true;
    try {
      state.basemap = choice.id;
      state.crs = choice.crs;
      const crs = leafletCrsFor(choice.id);
      if (crs !== map.options.crs) {
        const center = map.getCenter();
        map.options.crs = crs;
        map.setView(center, map.getZoom(), { animate: false, reset: true });
      }
      addBaseLayers();
      container.dataset.basemap = choice.id;
      await reloadLocation();
    } catch (err) {
      container.dataset.state = "error";
      failed(err, "切换底图失败");
    } finally {
      select.disabled = false;
    }
  });

  // a customer without a point: a click on the map places one (then save as for a drag)
  map.on("click", (e) => {
    if (!opts.canEdit || state.marker) return;
    state.marker = L.marker(e.latlng, { icon: markerIcon(true), draggable: true, keyboard: false }).addTo(map);
    state.marker.moved = true;
    state.marker.on("dragend", setHint);
    container.dataset.moved = "true";
    setHint();
  });
  cancelBtn.addEventListener("click", () => show(state.location));
  saveBtn.addEventListener("click", async () => {
    const ll = state.marker.getLatLng();
    container.dataset.sent = `${ll.lng},${ll.lat}`; // in state.crs, as sent
    saveBtn.disabled = true;
    try {
      await api(`/api/v1/customers/${opts.customerId}/location`, {
        method: "POST", query: { crs: state.crs }, json: { lon: ll.lng, lat: ll.lat, source: "corrected" },
      });
      await reloadLocation();
      toast("位置已纠偏保存，网格已按新位置重新归属", "success");
      if (opts.onSaved) opts.onSaved(state.location);
    } catch (err) {
      failed(err, "保存位置失败");
    } finally {
      saveBtn.disabled = false;
    }
  });

  return { show, map, get crs() { return state.crs; } };
}
