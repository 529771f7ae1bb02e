// 网格管理: grid tree + map editor. Every rule (levels, topology, versions, scope) is the API's; this module
// only draws, collects edits and shows what the API answers. Geometry goes back and forth in the crs of the
// chosen base map (?crs=wgs84|gcj02|bd09), so drawings line up with the tiles.
// The page is split into modules: grid-editor-core.js (state, labels, helpers), grid-editor-tree.js (tree and
// search), grid-editor-panel.js (map layers, selection, details panel), grid-editor-edit.js (edit modes and
// topology problems); this one wires the base maps and starts the page.
import { api, el, initLayout, reportError } from "./common.js";
import { failed, toast } from "./grid-ui.js";
import { $, CRS_LABELS, GRIDS, SNAP, firstCoord, layers, setStatus, state, view } from "./grid-editor-core.js";
import {
  cancelMode, finishDrawing, onShapeCreated, saveMode, setMode, startDraw, startEdit, startSplit,
} from "./grid-editor-edit.js";
import { clearSelection, drawLayers, fetchLayerData, relabel, selectGrid } from "./grid-editor-panel.js";
import { initFilters, loadTree } from "./grid-editor-tree.js";
import { createBaseMap } from "./map/base.js";
import { basemapById, basemapChoices, createBaseLayers, leafletCrsFor } from "./map/basemaps.js";

// ---------------------------------------------------------------- base maps

function initBasemapSelect(config) {
  const select = $("ge-basemap");
  for (const choice of basemapChoices(config)) {
    select.append(el("option", {
      value: choice.id, disabled: !choice.available, title: choice.reason || `${choice.label}（${CRS_LABELS[choice.crs]}）`,
    }, choice.available ? choice.label : `${choice.label}（未配置）`));
  }
  select.value = state.basemap;
  $("ge-map").dataset.basemap = state.basemap;
  select.addEventListener("change", () => setBasemap(select.value, config));
}

let tileErrorShown = false;
function addBaseLayers(id, config) {
  state.baseLayers.forEach((layer) => layer.remove());
  state.baseLayers = createBaseLayers(id, config);
  tileErrorShown = false;
  for (const layer of state.baseLayers) {
    layer.on("tileerror", () => {
      if (tileErrorShown) return;
      tileErrorShown = true;
      toast("底图瓦片加载失败（网络不可达或地址有误），网格数据不受影响。", "info", 6000);
    });
    layer.addTo(view.map);
  }
}

/** The zoom in `to` that shows the ground at the same scale as `zoom` in `from` (Baidu's zooms are ~0.74 finer). */
function equivalentZoom(from, to, center, zoom) {
  const metresPerPixel = (crs) => {
    const p = crs.latLngToPoint(center, zoom);
    return crs.distance(center, crs.pointToLatLng(p.add([100, 0]), zoom)) / 100;
  };
  return zoom - Math.log2(metresPerPixel(from) / metresPerPixel(to));
}

/** Switch base map: reload the overlays in its crs, swap the Leaflet CRS if needed and keep the view. */
async function setBasemap(id, config) {
  const choice = basemapById(id);
  const before = { crs: state.crs, zoom: view.map.getZoom(), center: view.map.getCenter() };
  if (choice.id === state.basemap) return;
  const refOld = state.grid ? firstCoord(state.grid.geometry) : null;
  state.basemap = choice.id;
  state.crs = choice.crs;
  setStatus();
  const seq = ++state.seq;
  const container = $("ge-map");
  const select = $("ge-basemap");
  container.dataset.state = "loading";
  select.disabled = true;
  try {
    let grid = state.grid;
    if (grid && before.crs !== state.crs) grid = await api(`${GRIDS}/${grid.id}`, { query: { crs: state.crs } });
    const results = await fetchLayerData(grid);
    const current = seq === state.seq; // else a selection started meanwhile and draws its own layers
    const refNew = grid ? firstCoord(grid.geometry) : null;
    const [dx, dy] = current && refOld && refNew ? [refNew[0] - refOld[0], refNew[1] - refOld[1]] : [0, 0];
    const crs = leafletCrsFor(choice.id);
    let zoom = before.zoom;
    if (crs !== view.map.options.crs) {
      zoom = equivalentZoom(view.map.options.crs, crs, before.center, before.zoom);
      view.map.options.crs = crs;
    }
    // a reset view re-projects every vector layer already on the map
    view.map.setView([before.center.lat + dy, before.center.lng + dx], zoom, { animate: false, reset: true });
    addBaseLayers(choice.id, config);
    container.dataset.basemap = choice.id;
    if (current) {
      state.grid = grid;
      drawLayers(results);
      relabel();
      container.dataset.state = "ready";
    }
  } catch (err) {
    container.dataset.state = "error";
    failed(err, "切换底图失败");
  } finally {
    select.disabled = Boolean(state.mode);
  }
}

// ---------------------------------------------------------------- start-up

function initMap() {
  view.map = createBaseMap($("ge-map"), { zoom: 9 });
  if (!view.map) return false;
  view.L = window.L;
  view.map.createPane("ge-problems").style.zIndex = "450";
  for (const name of ["overview", "parent", "siblings", "children", "selected", "topology"]) {
    layers[name] = view.L.featureGroup([], { pmIgnore: true }).addTo(view.map);
  }
  if (view.map.pm) {
    view.map.pm.setLang("zh");
    view.map.pm.setGlobalOptions({ ...SNAP, templineStyle: { color: "#d97706" }, hintlineStyle: { color: "#d97706", dashArray: "5 5" } });
    view.map.on("pm:create", onShapeCreated);
  }
  view.map.on("zoomend moveend", relabel);
  return true;
}

function initToolbar() {
  $("ge-draw").addEventListener("click", startDraw);
  $("ge-edit").addEventListener("click", startEdit);
  $("ge-split").addEventListener("click", startSplit);
  $("ge-merge").addEventListener("click", () => setMode("merge"));
  $("ge-mode-cancel").addEventListener("click", cancelMode);
  $("ge-mode-finish").addEventListener("click", finishDrawing);
  $("ge-mode-save").addEventListener("click", saveMode);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.mode && !document.querySelector("dialog[open]")) cancelMode();
  });
}

async function main() {
  const config = JSON.parse($("ge-basemap-config").textContent || "{}");
  const layout = initLayout();
  initFilters();
  initToolbar();
  if (!initMap()) {
    $("ge-map").dataset.state = "error";
    await layout;
    return;
  }
  initBasemapSelect(config);
  setStatus();
  const { me } = await layout;
  state.me = me;
  state.canEdit = Boolean(me && (me.permissions || []).includes("grid:edit"));
  const wanted = Number(new URLSearchParams(location.search).get("grid"));
  await loadTree();
  if (!wanted || !(await selectGrid(wanted))) await clearSelection();
}

main().catch((err) => reportError(err));
