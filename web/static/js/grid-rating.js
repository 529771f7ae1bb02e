// 网格评级 section of the grid editor's details panel: the latest grade (A–D) and score of the selected grid with
// its components (value, unit, rank among grids of the same level, weight) from GET /api/v1/grids/{id}/rating;
// 立即评级 (grid:rate) rates it now (POST, same statement as the batch), and 全部重新评级 (grid:rate with the
// 全行 data scope: it rates every grid) starts the background job and follows GET /api/v1/jobs/{id}.
import { api, el, formatDateTime, formatNumber } from "./common.js";
import { errorText } from "./grid-ui.js";

const JOB_STATUS = {
  queued: "排队中", started: "执行中", deferred: "等待中", scheduled: "已计划", finished: "已完成",
  failed: "失败", stopped: "已停止", canceled: "已取消",
};
const JOB_DONE = new Set(["finished", "failed", "stopped", "canceled"]);
const POLL_MS = 1000;
const POLL_MAX = 900; // 15 minutes

// One rating job at a time for the page; its progress shows in whichever rating section is on screen.
const job = { id: null, status: null, progress: null, error: null, polls: 0 };
let current = null; // the section on screen: {grid, ctx, root, jobBox, reload}

/** The 网格评级 section for `grid`; it loads its data itself. ctx: {me, toast}. */
export function renderRatingSection(grid, ctx) {
  const me = ctx.me || {};
  const perms = new Set(me.permissions || []);
  const view = { grid, ctx, body: el("div", { class: "gr-body" }, el("p", { class: "gs__note" }, "加载中…")) };
  const rateNow = perms.has("grid:rate") ? el("button", {
    type: "button", class: "btn btn--sm", id: "gr-rate-now", onclick: () => rateOne(view, rateNow),
  }, "立即评级") : null;
  const rateAll = perms.has("grid:rate") && me.data_scope === "all" ? el("button", {
    type: "button", class: "btn btn--sm", id: "gr-rate-all", title: "按当前启用的评级方案重新评定全部网格（后台任务）",
    onclick: () => startRateAll(view),
  }, "全部重新评级") : null;
  view.jobBox = el("div", { class: "gr-job", id: "gr-job", hidden: true, "aria-live": "polite" });
  view.root = el(
    "section",
    { class: "gs gs-rating", id: "gs-rating", dataset: { state: "loading" }, "aria-label": "网格评级" },
    el("div", { class: "gs__head" }, el("h3", { class: "gs__title" }, "网格评级")),
    view.body,
    rateNow || rateAll ? el("div", { class: "gs__actions" }, rateNow, rateAll) : null,
    view.jobBox,
  );
  view.reload = () => load(view);
  current = view;
  renderJob();
  load(view);
  return view.root;
}

async function load(view) {
  view.root.dataset.state = "loading";
  try {
    const rating = await api(`/api/v1/grids/${view.grid.id}/rating`);
    renderRating(view, rating);
    view.root.dataset.state = "rated";
  } catch (err) {
    if (err && err.code === "GRID_NOT_RATED") {
      view.body.replaceChildren(el("div", { class: "gr-empty" },
        el("span", { class: "gr-grade gr-grade--none", "aria-hidden": "true" }, "—"),
        el("span", {}, "尚未评级")));
      view.root.dataset.state = "unrated";
    } else {
      view.body.replaceChildren(el("p", { class: "gs__note gs__note--error" }, errorText(err, "加载评级失败")));
      view.root.dataset.state = "error";
    }
  }
}

function renderRating(view, rating) {
  const comps = Object.entries(rating.components || {}).sort((a, b) => (b[1].weight || 0) - (a[1].weight || 0));
  const totalWeight = comps.reduce((s, [, c]) => s + (c.weight || 0), 0) || 1;
  const grade = String(rating.grade || "").toUpperCase();
  view.body.replaceChildren(
    el("div", { class: "gr-summary" },
      el("span", { class: `gr-grade gr-grade--${grade || "none"}`, id: "gr-grade", title: `评级 ${grade}` }, grade || "—"),
      el("div", { class: "gr-summary__text" },
        el("div", { class: "gr-score" }, formatNumber(rating.score, 1), el("small", {}, " 分")),
        el("div", { class: "gr-meta" }, `评级时间 ${formatDateTime(rating.computed_at).slice(0, 16)}`,
          rating.scheme ? ` · 方案 ${rating.scheme}` : ""))),
    el("ul", { class: "gr-components", "aria-label": "评级维度" }, comps.map(([key, c]) => {
      const rank = Math.max(0, Math.min(1, Number(c.rank) || 0));
      const value = c.value === null || c.value === undefined ? "—" : `${formatNumber(c.value, c.value % 1 ? 2 : 0)} ${c.unit || ""}`;
      return el("li", { class: "gr-comp", dataset: { key } },
        el("div", { class: "gr-comp__top" },
          el("span", { class: "gr-comp__label" }, c.label || key,
            c.higher_is_better === false ? el("span", { class: "gr-comp__dir", title: "数值越小得分越高" }, "↓优") : null),
          el("span", { class: "gr-comp__value" }, value)),
        el("div", { class: "gr-bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100,
          "aria-valuenow": Math.round(rank * 100), "aria-label": `${c.label || key} 同级百分位` },
        el("span", { class: "gr-bar__fill", style: `width: ${(rank * 100).toFixed(1)}%` })),
        el("div", { class: "gr-comp__meta" }, `优于同级 ${Math.round(rank * 100)}% 网格`,
          ` · 权重 ${Math.round(((c.weight || 0) / totalWeight) * 100)}%`));
    })),
  );
}

async function rateOne(view, button) {
  button.disabled = true;
  try {
    const rating = await api(`/api/v1/grids/${view.grid.id}/rating`, { method: "POST" });
    renderRating(view, rating);
    view.root.dataset.state = "rated";
    view.ctx.toast(`评级完成：${rating.grade} 级，${formatNumber(rating.score, 1)} 分`, "success");
  } catch (err) {
    const text = errorText(err, "评级失败");
    if (text) view.ctx.toast(text, "error");
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- rate all grids (background job)

async function startRateAll(view) {
  if (job.id && !JOB_DONE.has(job.status)) return;
  try {
    const started = await api("/api/v1/grid-ratings/run", { method: "POST" });
    Object.assign(job, { id: started.id, status: started.status, progress: started.progress, error: null, polls: 0 });
    renderJob();
    view.ctx.toast("已提交全部网格重新评级任务", "info");
    setTimeout(poll, POLL_MS);
  } catch (err) {
    const text = errorText(err, "提交评级任务失败");
    if (text) view.ctx.toast(text, "error");
  }
}

async function poll() {
  job.polls += 1;
  try {
    const body = await api(`/api/v1/jobs/${encodeURIComponent(job.id)}`);
    Object.assign(job, { status: body.status, progress: body.progress, error: body.error, result: body.result });
  } catch (err) {
    Object.assign(job, { status: "failed", error: errorText(err) || "查询任务状态失败" });
  }
  if (!JOB_DONE.has(job.status) && job.polls >= POLL_MAX) {
    Object.assign(job, { status: "stopped", error: "等待超时：任务仍未完成，请确认后台任务进程（worker）已启动" });
  }
  renderJob();
  if (!JOB_DONE.has(job.status)) {
    setTimeout(poll, POLL_MS);
    return;
  }
  if (current && current.root.isConnected) {
    if (job.status === "finished") {
      const rated = job.result && job.result.rated;
      current.ctx.toast(`全部网格重新评级完成${rated !== undefined ? `（${formatNumber(rated)} 个）` : ""}`, "success");
      current.reload();
    } else {
      current.ctx.toast(`重新评级任务${JOB_STATUS[job.status] || job.status}${job.error ? `：${job.error}` : ""}`, "error");
    }
  }
}

function renderJob() {
  const box = current && current.jobBox;
  if (!box || !job.id) return;
  const button = current.root.querySelector("#gr-rate-all");
  const running = !JOB_DONE.has(job.status);
  if (button) button.disabled = running;
  const p = job.progress || {};
  const total = Number(p.total) || 0;
  const done = Number(p.done) || 0;
  const pct = job.status === "finished" ? 100 : total ? Math.round((done / total) * 100) : null;
  const label = JOB_STATUS[job.status] || job.status;
  box.hidden = false;
  box.dataset.status = job.status;
  box.replaceChildren(...[
    el("div", { class: "gr-job__top" },
      el("span", {}, "全部重新评级：", el("b", { class: "gr-job__status" }, label)),
      total ? el("span", { class: "gr-job__count" }, `${formatNumber(done)} / ${formatNumber(total)}`) : null),
    el("div", { class: `gr-bar gr-bar--job${running && pct === null ? " is-indeterminate" : ""}` },
      el("span", { class: "gr-bar__fill", style: `width: ${pct === null ? 35 : pct}%` })),
    job.error ? el("div", { class: "gr-job__error" }, job.error) : null,
  ].filter(Boolean)); // replaceChildren would print a null
}
