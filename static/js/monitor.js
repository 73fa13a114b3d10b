// Monitor view: key-metrics banner, overview cards, the 27 panels and the panel settings dialog.
// Each refresh asks /api/range only for the series of the panels that are visible.
import { $, api, clear, clock, colors as themeColors, el, format, jsonData, palette, toast } from "./common.js";
import * as Cluster from "./cluster.js";
import { dragReorder } from "./drag-reorder.js";
import * as Health from "./health.js";
import { echarts } from "./vendor.js";

const registry = jsonData("panel-registry");
const panelsById = Object.fromEntries(registry.panels.map((p) => [p.id, p]));
const cardsById = Object.fromEntries(registry.cards.map((c) => [c.id, c]));
const MAX_CARDS = registry.max_visible_cards;

let config = jsonData("panel-config");
let members = [];
let memberId = "";
let latest = {};
let basis = {}; // quantile name → "window" | "cumulative" (/api/current)
let current = { stale: false, as_of: null }; // /api/current's verdict on the values shown
let cluster = null; // /api/status's `cluster` object, from the health poll
let charts = {}; // panel id -> echarts instance
let timer = null;
let loadedOnce = false;
let inFlight = null;
let again = false;
let onMembers = () => {};

// --- layout from the saved config ---
function orderedEntries(list) {
  return [...list].sort((a, b) => a.order - b.order);
}
function visiblePanels() {
  return orderedEntries(config.panels).filter((p) => p.visible && panelsById[p.id]);
}
function visibleMetrics() {
  const names = new Set();
  for (const entry of visiblePanels()) {
    for (const s of panelsById[entry.id].series) names.add(s.metric);
  }
  return [...names];
}

function renderLayout() {
  for (const chart of Object.values(charts)) chart.dispose();
  charts = {};
  const root = clear($("panels"));
  root.appendChild(el("p", { id: "data-since", className: "data-since muted small", hidden: true }));
  const visible = visiblePanels();
  for (const section of registry.sections) {
    const inSection = visible.filter((entry) => panelsById[entry.id].section === section.id);
    if (!inSection.length) continue; // a section whose panels are all hidden shows no header
    const grid = el("div", { className: "panel-grid" });
    for (const entry of inSection) grid.appendChild(panelNode(panelsById[entry.id]));
    root.appendChild(el("section", { className: "panel-section", dataset: { section: section.id } },
      el("h2", { className: "section-title" }, section.title), grid));
  }
  for (const entry of visible) {
    charts[entry.id] = echarts.init($(entry.id), null, { renderer: "canvas" });
  }
}

function panelNode(panel) {
  return el("div", { className: "panel", id: "panel-" + panel.id, dataset: { panelId: panel.id } },
    el("div", { className: "panel-head" },
      el("h3", {}, panel.title),
      el("span", { className: "panel-tag" }, panel.tag),
      el("button", { type: "button", className: "icon maximise", title: "Maximise", "aria-label": "Maximise " + panel.title,
        onclick: () => toggleMaximise(panel.id) }, "⤢")),
    el("p", { className: "panel-note", id: "note-" + panel.id, hidden: true }),
    el("div", { className: "chart", id: panel.id }));
}

// --- maximise ---
let maximised = null;
function toggleMaximise(id) {
  if (maximised) return restore();
  maximised = id;
  $("panel-" + id).classList.add("maximised");
  $("maximise-backdrop").hidden = false;
  if (charts[id]) charts[id].resize();
}
function restore() {
  if (!maximised) return;
  const node = $("panel-" + maximised);
  if (node) node.classList.remove("maximised");
  $("maximise-backdrop").hidden = true;
  if (charts[maximised]) charts[maximised].resize();
  maximised = null;
}

// --- charts ---
function axisFormatter(unit) {
  return (v) => (unit === "percent" ? Number(v.toFixed(1)) + " %" : format(unit, v));
}
function rgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}
function markLine(lines, colors) {
  return {
    silent: true, symbol: "none",
    data: lines.map((l) => ({
      yAxis: l.value, name: l.label,
      lineStyle: { color: colors[l.color] || l.color, type: "dashed" },
      label: { formatter: l.label, color: colors[l.color] || l.color, position: "insideEndTop" },
    })),
  };
}

function fragmentation(series) {
  const total = new Map((series.etcd_mvcc_db_total_size_in_bytes || []).map((p) => [p.ts, p.value]));
  const points = [];
  for (const p of series.etcd_mvcc_db_total_size_in_use_in_bytes || []) {
    const t = total.get(p.ts); // joined on timestamp, never on array position
    if (t > 0) points.push([p.ts * 1000, Math.min(100, Math.max(0, (1 - p.value / t) * 100))]);
  }
  return points;
}

// The usual spacing of a series' points (their median step), 0 with fewer than two points.
function usualStep(points) {
  const steps = [];
  for (let i = 1; i < points.length; i++) steps.push(points[i].ts - points[i - 1].ts);
  steps.sort((a, b) => a - b);
  return steps.length ? steps[Math.floor(steps.length / 2)] : 0;
}

// An outage stores no points: break the line there instead of drawing across it. A gap is
// more than twice the usual spacing of the series' points.
function withGaps(points) {
  const usual = usualStep(points);
  const data = [];
  for (let i = 0; i < points.length; i++) {
    if (i > 0 && usual > 0 && points[i].ts - points[i - 1].ts > 2 * usual) {
      data.push([(points[i - 1].ts + usual) * 1000, null]);
    }
    data.push([points[i].ts * 1000, points[i].value]);
  }
  return data;
}

// A cumulative counter of rare events (leader changes, slow applies) as its increase from one
// point to the next. Downsampled points are averages: each is rounded to the counter's nearest
// integer first, so the increases are whole events and add up to the change over the range.
// No increase across a gap (unknown when it happened) or a reset (the member restarted).
function increases(points) {
  const usual = usualStep(points);
  const data = [];
  for (let i = 1; i < points.length; i++) {
    const prev = points[i - 1];
    const cur = points[i];
    if (usual > 0 && cur.ts - prev.ts > 2 * usual) {
      data.push([(prev.ts + usual) * 1000, null]);
      continue;
    }
    const d = Math.round(cur.value) - Math.round(prev.value);
    data.push([cur.ts * 1000, d < 0 ? null : d]);
  }
  return data;
}

// Ticks of a byte axis at round binary steps (0, 512 MiB, 1 GiB, ...), never 190.73 MiB.
function binaryAxis(max) {
  if (!(max > 0)) return {};
  let unit = 1;
  while (max / unit >= 1024 && unit < 1024 ** 4) unit *= 1024;
  const raw = max / unit / 4; // about four ticks
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * pow).find((x) => x >= raw) * unit;
  return { max: Math.ceil(max / step - 1e-9) * step, interval: step };
}
// The smallest 1, 2, 2.5 or 5 × 10^k at or above x.
function niceCeil(x) {
  const pow = 10 ** Math.floor(Math.log10(x));
  return [1, 2, 2.5, 5, 10].map((f) => f * pow).find((v) => v >= x * (1 - 1e-9));
}
function seriesMax(lines, axis) {
  let max = 0;
  for (const l of lines) {
    if ((l.yAxisIndex || 0) !== axis) continue;
    for (const [, v] of l.data) if (v !== null && v > max) max = v;
  }
  return max;
}
const isBytes = (unit) => unit === "bytes" || unit === "bytes_per_second";

let window_ = {};
function chartOption(panel, series) {
  const colors = themeColors();
  const axisStyle = {
    axisLine: { lineStyle: { color: colors.grid } },
    axisLabel: { color: colors.muted },
    splitLine: { lineStyle: { color: colors.grid, opacity: 0.5 } },
  };
  // Counts have whole-number ticks (no "0.5 leader changes").
  const valueAxis = (unit, extra) => ({ type: "value", ...axisStyle, minInterval: unit === "count" ? 1 : undefined,
    axisLabel: { color: colors.muted, formatter: axisFormatter(unit) }, ...extra });
  const yAxis = [valueAxis(panel.unit, { max: panel.y_max, min: panel.y_max ? 0 : undefined })];
  if (panel.right_unit) yAxis.push(valueAxis(panel.right_unit, { splitLine: { show: false } }));
  let lines;
  // No smoothing: a spline invents values between the points and overshoots below zero.
  if (panel.derived === "fragmentation") {
    lines = [{ name: "Fragmentation", type: "line", smooth: false, showSymbol: false, data: fragmentation(series) }];
  } else {
    lines = panel.series.map((s) => ({
      name: s.label, type: "line", smooth: false, showSymbol: false, yAxisIndex: s.axis,
      step: s.derive === "increase" ? "start" : undefined,
      areaStyle: s.area ? { opacity: 0.15 } : undefined,
      data: s.derive === "increase" ? increases(series[s.metric] || []) : withGaps(series[s.metric] || []),
    }));
  }
  const first = lines[0];
  if (panel.mark_lines) first.markLine = markLine(panel.mark_lines, colors);
  [0, 1].forEach((axis) => {
    const unit = axis ? panel.right_unit : panel.unit;
    if (isBytes(unit) && !panel.quota_lines) Object.assign(yAxis[axis], binaryAxis(seriesMax(lines, axis)));
  });
  const quota = latest.etcd_server_quota_backend_bytes;
  if (panel.quota_lines && quota > 0) {
    // The axis reaches the quota, and a right axis reads the same height as % of it.
    first.markLine = markLine(panel.quota_lines.map((q) => ({ ...q, value: quota * q.fraction })), colors);
    const scale = binaryAxis(Math.max(quota, seriesMax(lines, 0)));
    Object.assign(yAxis[0], { min: 0, ...scale });
    yAxis.push(valueAxis("percent", { splitLine: { show: false }, min: 0,
      max: (scale.max / quota) * 100, interval: (scale.interval / quota) * 100 }));
  } else if (panel.quota_lines) {
    Object.assign(yAxis[0], binaryAxis(seriesMax(lines, 0)));
  }
  if (panel.right_mark_lines) {
    const right = lines.find((l) => l.yAxisIndex === 1);
    if (right) right.markLine = markLine(panel.right_mark_lines, colors);
  }
  if (panel.bands) {
    first.markArea = {
      silent: true,
      data: panel.bands.map((b) => [
        { yAxis: b.from, itemStyle: { color: rgba(colors[b.color], 0.08) } },
        { yAxis: b.to === null ? Number.MAX_SAFE_INTEGER : b.to },
      ]),
    };
    // Keep the axis on the data, not on the open-ended top band, and end it on a round value
    // (250 ms, not 215 ms) so its top label does not crowd the tick below it.
    yAxis[0].max = (value) => niceCeil(Math.max(value.max * 1.1, 0.001));
  }
  const byLabel = Object.fromEntries(panel.series.map((s) => [s.label, s]));
  const valueText = (name, v) => {
    if (v === null || v === undefined) return "no data";
    if (panel.derived) return v.toFixed(1) + " %";
    const s = byLabel[name];
    if (s && s.derive === "increase") return "+" + v + " since the previous point";
    const text = format(s ? s.unit : panel.unit, v);
    return panel.quota_lines && quota > 0 ? `${text} (${((v / quota) * 100).toFixed(1)} % of quota)` : text;
  };
  return {
    color: palette(),
    backgroundColor: "transparent",
    animation: false,
    textStyle: { color: colors.text },
    grid: { left: 64, right: yAxis.length > 1 ? 64 : 18, top: 36, bottom: 26 },
    legend: { top: 0, type: "scroll", textStyle: { color: colors.muted } },
    tooltip: {
      trigger: "axis",
      formatter: (items) => {
        if (!items.length) return "";
        const lines2 = [clock(items[0].value[0] / 1000)];
        for (const item of items) {
          lines2.push(item.marker + " " + escapeText(item.seriesName) + ": " + escapeText(valueText(item.seriesName, item.value[1])));
        }
        return lines2.join("<br>");
      },
    },
    xAxis: { type: "time", ...axisStyle, splitLine: { show: false }, min: window_.start * 1000 || undefined,
      max: window_.end * 1000 || undefined,
      axisLabel: { color: colors.muted, hideOverlap: true, formatter: window_.long ? "{MM}-{dd} {HH}:{mm}" : window_.short ? "{HH}:{mm}:{ss}" : "{HH}:{mm}" } },
    yAxis,
    series: lines,
  };
}

// "data since 14:02" when the chosen range reaches back before the oldest stored point, so
// an empty left part of every chart is not read as an outage.
function dataSinceText(series, start, end) {
  let first = Infinity;
  for (const points of Object.values(series || {})) if (points && points.length) first = Math.min(first, points[0].ts);
  if (!isFinite(start) || !isFinite(end)) return "";
  if (first === Infinity) return "No stored data in this range yet.";
  const slack = Math.max(120, 0.02 * (end - start)); // a bucket's width of the longest tiers
  if (first - start <= slack) return "";
  const d = new Date(first * 1000);
  const hhmm = d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", hour12: false });
  const today = d.toDateString() === new Date().toDateString();
  const day = today ? "" : d.toLocaleDateString("en-GB", { day: "numeric", month: "short" }) + " ";
  return `Data since ${day}${hhmm}: the chosen range is longer than the stored history.`;
}
function renderDataSince() {
  const note = $("data-since");
  if (!note) return;
  const text = dataSinceText(lastSeries, window_.start, window_.end);
  note.textContent = text;
  note.hidden = !text;
}
// Tooltip HTML is built by ECharts; series names come from our registry, but escape anyway.
function escapeText(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function drawCharts(series) {
  for (const [id, chart] of Object.entries(charts)) {
    chart.setOption(chartOption(panelsById[id], series || {}), true);
    renderNote(panelsById[id]);
  }
}
let lastSeries = {};
let notExported = {};

// A series this member's etcd does not export (a renamed or dropped name, per /api/range's
// not_exported) is named on the panel, so an empty chart never looks like a quiet one.
function renderNote(panel) {
  const note = $("note-" + panel.id);
  if (!note) return;
  const missing = panel.series.filter((s) => notExported[s.metric]);
  const names = [...new Set(missing.flatMap((s) => notExported[s.metric]))].join(", ");
  note.hidden = !missing.length;
  note.classList.toggle("all", missing.length === panel.series.length);
  note.textContent = !missing.length ? ""
    : missing.length === panel.series.length ? `no data: ${names} not exported by this etcd`
    : `${missing.map((s) => s.label).join(", ")}: ${names} not exported by this etcd`;
}

// --- banner and cards ---
function metricBox(label, value, sub, cls, extra) {
  return el("div", { className: "metric " + (extra || "") },
    el("div", { className: "label" }, label),
    el("div", { className: "value " + (cls || "") }, value),
    sub ? el("div", { className: "sub" }, sub) : null);
}
function renderBanner(status) {
  const m = latest;
  const commit = m.etcd_disk_backend_commit_duration_seconds_p99;
  clear($("banner")).append(
    metricBox("Version", (status && status.etcd_version) || m.etcd_version || "–",
      status && status.storage_version ? "storage " + status.storage_version : undefined),
    metricBox("CPU Usage", m.process_cpu_usage_percent === undefined ? "–" : m.process_cpu_usage_percent.toFixed(1) + " %"),
    metricBox("Memory", format("bytes", m.process_resident_memory_bytes)),
    metricBox("DB Size", format("bytes", m.etcd_mvcc_db_total_size_in_bytes),
      "In use: " + format("bytes", m.etcd_mvcc_db_total_size_in_use_in_bytes)),
    metricBox("KV Total", format("integer", m.etcd_mvcc_keys_total)),
    metricBox("Lease Total", format("integer", m.etcd_lease_count)),
    metricBox("Backend Commit P99", format("duration", commit),
      "target < 25ms" + sinceStart("etcd_disk_backend_commit_duration_seconds_p99"), commit > 0.025 ? "bad" : ""),
  );
}

// A quantile the recent window could not give (no observation) is the since-start one: say so.
function sinceStart(name) {
  return basis[name] === "cumulative" ? " · since start (none recently)" : "";
}

function fragRatio() {
  const total = latest.etcd_mvcc_db_total_size_in_bytes;
  const used = latest.etcd_mvcc_db_total_size_in_use_in_bytes;
  if (!(total > 0) || used === undefined) return null;
  return Math.min(1, Math.max(0, 1 - used / total));
}

function cardNode(card) {
  const m = latest;
  const value = card.metric ? m[card.metric] : undefined;
  switch (card.id) {
    case "cardLeader": {
      // The leader named by the latest health probe; this member's role from the same round.
      const me = members.find((x) => x.id === memberId);
      const leader = cluster && cluster.leader_id ? members.find((x) => x.id === cluster.leader_id) : null;
      const name = leader ? leader.name || leader.id : cluster ? "none" : "–";
      return metricBox(card.label, name, me ? "this member: " + Health.role(me) : "",
        leader ? "good" : cluster ? "bad" : "");
    }
    case "cardLeaderChanges":
      return metricBox(card.label, format("count", value), "total elections");
    case "cardMemberSize": {
      const tip = el("div", { className: "member-tip" }, members.map((mem) =>
        el("button", { type: "button", onclick: () => selectMember(mem.id), dataset: { member: mem.id, health: mem.health } },
          el("span", { className: "dot " + (mem.health || "unknown") }),
          memberText(mem, true))));
      const up = members.filter((x) => x.health === "up").length;
      const box = metricBox(card.label, `${up}/${members.length} up`, "hover to list, click to switch",
        up < members.length ? "bad" : "", "card-members");
      box.appendChild(tip);
      box.tabIndex = 0; // keyboard users open the list by focusing the card (CSS :focus-within)
      return box;
    }
    case "cardRaftIndex":
      return metricBox(card.label, format("integer", value), "commit index");
    case "cardWAL":
      return metricBox(card.label, format("duration", value), "target < 10ms" + sinceStart(card.metric),
        value > 0.01 ? "bad" : "");
    case "cardFragmentationRatio": {
      const r = fragRatio();
      const cls = r === null ? "" : r > 0.6 ? "bad" : r >= 0.4 ? "warn" : r >= 0.3 ? "caution" : "good";
      return metricBox(card.label, r === null ? "–" : (r * 100).toFixed(1) + " %", "1 − in use / total", cls);
    }
    case "cardPending":
      return metricBox(card.label, format("count", value), "", value > 5 ? "bad" : "");
    case "cardLag":
      return metricBox(card.label, format("count", value), "", value > 50 ? "bad" : "");
    case "cardFailedRate":
      return metricBox(card.label, value === undefined ? "–" : value.toFixed(2) + "/s", "", value > 0 ? "bad" : "");
    default:
      return metricBox(card.label, format(card.unit, value));
  }
}
function renderCards() {
  const visible = orderedEntries(config.cards || []).filter((c) => c.visible && cardsById[c.id]).slice(0, MAX_CARDS);
  const box = clear($("cards"));
  box.classList.toggle("stale", !!current.stale);
  box.style.gridTemplateColumns = `repeat(${Math.max(visible.length, 1)}, 1fr)`;
  for (const entry of visible) {
    const node = cardNode(cardsById[entry.id]);
    node.id = entry.id;
    box.appendChild(node);
  }
}

// --- members ---
// "m1 · leader · up · v3.4.23" (with the endpoint in the picker).
function memberText(m, withEndpoint) {
  const parts = [m.name || m.id];
  if (withEndpoint) parts[0] += " (" + m.endpoint + ")";
  const role = Health.role(m);
  parts.push(role === "down" ? "DOWN" : role === "unknown" ? "health unknown" : role + " · up");
  if (m.etcd_version) parts.push("v" + m.etcd_version);
  return parts.join(" · ");
}
function renderMembers() {
  const select = clear($("member-select"));
  for (const m of members) {
    select.appendChild(el("option", { value: m.id, selected: m.id === memberId, dataset: { health: m.health || "unknown" } },
      (m.is_leader ? "★ " : "") + memberText(m, true)));
  }
  onMembers(members);
}
function renderStale() {
  const note = $("stale-note");
  const stale = !!current.stale;
  note.hidden = !stale;
  const me = members.find((m) => m.id === memberId);
  const why = me && me.health === "down" ? "the member is down" : "its last scrape failed or is late";
  note.textContent = stale
    ? "Not current: these values are " + (current.as_of ? "as of " + clock(current.as_of) : "not available") +
      " (" + why + ")."
    : "";
  $("banner").classList.toggle("stale", stale);
}
// The health poll (every few seconds): members' health and the cluster line's data.
function healthChanged(status) {
  cluster = status.cluster;
  const before = Object.fromEntries(members.map((m) => [m.id, m.health]));
  if (!members.length) return;
  const byId = Object.fromEntries((status.members || []).map((m) => [m.id, m]));
  members = members.map((m) => (byId[m.id] ? { ...m, ...byId[m.id] } : m));
  renderMembers();
  renderCards();
  // The shown member went down or came back: its values' freshness changed, re-read them.
  if (before[memberId] !== (byId[memberId] && byId[memberId].health)) refresh();
}
function selectMember(id) {
  memberId = id;
  $("member-select").value = id;
  refresh();
}

function setBadge(up) {
  const badge = $("conn-badge");
  badge.className = "badge " + (up ? "ok" : "down");
  badge.textContent = up ? "Connected" : "Disconnected";
}

// --- refresh ---
export async function refresh() {
  // A refresh asked for while one runs (a new range chosen) runs once after it: the running
  // one may have read the old range already.
  if (inFlight) {
    again = true;
    return inFlight;
  }
  inFlight = (async () => {
    const asked = Cluster.currentId();
    try {
      const membersResp = await api("GET", Cluster.scoped("/api/members"));
      if (asked !== Cluster.currentId()) return; // the cluster changed: the next refresh reads it
      members = membersResp.members || [];
      if (!memberId || !members.some((m) => m.id === memberId)) memberId = membersResp.default_member_id;
      renderMembers();
      const q = "member_id=" + encodeURIComponent(memberId);
      const metrics = visibleMetrics();
      const range = $("range-select").value;
      const [currentResp, status, rangeResp] = await Promise.all([
        api("GET", Cluster.scoped("/api/current?" + q)),
        api("GET", Cluster.scoped("/api/status")),
        metrics.length
          ? api("GET", Cluster.scoped(`/api/range?${q}&range=${encodeURIComponent(range)}&metrics=${metrics.map(encodeURIComponent).join(",")}`))
          : Promise.resolve({ metrics: {} }),
      ]);
      if (asked !== Cluster.currentId()) return;
      latest = currentResp.metrics || {};
      current = { stale: !!currentResp.stale, as_of: currentResp.as_of };
      cluster = status.cluster || cluster;
      basis = currentResp.basis || {};
      setBadge(status.collector_up);
      renderBanner(status);
      renderStale();
      renderCards();
      lastSeries = rangeResp.metrics || {};
      notExported = rangeResp.not_exported || {};
      const span = rangeResp.end - rangeResp.start;
      // Seconds on the ticks of short ranges, where minutes alone repeat ("20:21 20:21").
      window_ = { start: rangeResp.start, end: rangeResp.end, long: span > 86400, short: span <= 900 };
      drawCharts(lastSeries);
      renderDataSince();
      $("loading").hidden = true;
      loadedOnce = true;
    } catch (err) {
      if (err.status === 401 || asked !== Cluster.currentId()) return;
      setBadge(false);
      if (!loadedOnce) $("loading").textContent = "Cannot load data: " + err.message;
      else toast(err.message, "error");
    } finally {
      inFlight = null;
      if (again) {
        again = false;
        refresh();
      }
    }
  })();
  return inFlight;
}

function schedule() {
  if (timer) clearInterval(timer);
  timer = null;
  const seconds = parseInt($("refresh-select").value, 10);
  if (seconds > 0) timer = setInterval(refresh, seconds * 1000);
}

// --- panel settings dialog ---
// Within one section only: a panel never moves to another section.
function dragList(list) {
  dragReorder(list, {
    item: "li",
    idOf: (li) => li.dataset.id,
    isAfter: (e, target, dragged) => !!(dragged.compareDocumentPosition(target) & Node.DOCUMENT_POSITION_FOLLOWING),
    markClass: () => "drop",
    onDrop: (dragged, target, after) => list.insertBefore(dragged, after ? target.nextSibling : target),
  });
}
function settingsItem(id, label, visible, onToggle) {
  const box = el("input", { type: "checkbox", id: "set-" + id, checked: visible, onchange: onToggle });
  const move = (dir) => (e) => {
    const li = e.currentTarget.closest("li");
    const sibling = dir < 0 ? li.previousElementSibling : li.nextElementSibling;
    if (sibling) li.parentNode.insertBefore(li, dir < 0 ? sibling : sibling.nextSibling);
  };
  return el("li", { draggable: "true", dataset: { id } },
    el("span", { className: "handle", title: "Drag to reorder" }, "⠿"),
    box, el("label", { for: "set-" + id }, label),
    el("button", { type: "button", title: "Move up", "aria-label": "Move " + label + " up", onclick: move(-1) }, "↑"),
    el("button", { type: "button", title: "Move down", "aria-label": "Move " + label + " down", onclick: move(1) }, "↓"));
}
function updateCardCounter() {
  const boxes = [...$("settings-cards").querySelectorAll("input[type=checkbox]")];
  const n = boxes.filter((b) => b.checked).length;
  $("cards-counter").textContent = `${n} / ${MAX_CARDS} selected`;
  for (const b of boxes) b.disabled = !b.checked && n >= MAX_CARDS;
}
function fillSettings(cfg) {
  const cardList = clear($("settings-cards"));
  for (const entry of orderedEntries(cfg.cards)) {
    if (cardsById[entry.id]) cardList.appendChild(settingsItem(entry.id, cardsById[entry.id].label, entry.visible, updateCardCounter));
  }
  updateCardCounter();
  const groups = clear($("settings-panels"));
  for (const section of registry.sections) {
    const list = el("ul", { className: "settings-list", dataset: { section: section.id } });
    for (const entry of orderedEntries(cfg.panels)) {
      const panel = panelsById[entry.id];
      if (panel && panel.section === section.id) list.appendChild(settingsItem(panel.id, panel.title, entry.visible));
    }
    dragList(list);
    groups.appendChild(el("div", { className: "settings-group" }, el("h3", {}, section.title), list));
  }
}
function defaultsConfig() {
  return {
    panels: registry.panels.map((p) => ({ id: p.id, visible: p.default_visible, order: p.default_order })),
    cards: registry.cards.map((c, i) => ({ id: c.id, visible: c.default_visible, order: i })),
  };
}
function readSettings() {
  const cards = [...$("settings-cards").children].map((li, i) => ({
    id: li.dataset.id, visible: li.querySelector("input").checked, order: i,
  }));
  const panels = [];
  for (const list of $("settings-panels").querySelectorAll("ul")) {
    for (const li of list.children) {
      panels.push({ id: li.dataset.id, visible: li.querySelector("input").checked, order: panels.length });
    }
  }
  return { panels, cards };
}
async function saveSettings() {
  const next = readSettings();
  if (next.cards.filter((c) => c.visible).length > MAX_CARDS) {
    toast(`At most ${MAX_CARDS} overview cards can be shown.`, "error");
    return;
  }
  try {
    await api("PUT", "/api/user/panel-config", next);
    config = next;
    $("settings-dialog").close();
    restore();
    renderLayout();
    renderCards();
    toast("Panel settings saved", "success");
    refresh();
  } catch (err) {
    toast("Saving failed: " + err.message, "error");
  }
}

export function init(options) {
  onMembers = (options && options.onMembers) || onMembers;
  renderLayout();
  $("member-select").addEventListener("change", (e) => selectMember(e.target.value));
  $("range-select").addEventListener("change", refresh);
  $("refresh-select").addEventListener("change", schedule);
  $("refresh-now").addEventListener("click", refresh);
  $("panel-settings-btn").addEventListener("click", () => {
    fillSettings(config);
    $("settings-dialog").showModal();
  });
  $("settings-cancel").addEventListener("click", () => $("settings-dialog").close());
  $("settings-reset").addEventListener("click", () => fillSettings(defaultsConfig()));
  $("settings-save").addEventListener("click", saveSettings);
  $("maximise-backdrop").addEventListener("click", restore);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") restore(); });
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
  schedule();
  Health.subscribe(healthChanged);
  Cluster.subscribe(() => {
    // Another cluster: its own members (the default one shown first) and values.
    members = [];
    memberId = "";
    latest = {};
    // Until the new cluster's values arrive, failures (one never collected) show in place of
    // the dashboard, not as a toast on whichever view is open.
    loadedOnce = false;
    $("loading").hidden = false;
    $("loading").textContent = "Loading the cluster…";
    again = !!inFlight;
    refresh();
  });
  return refresh();
}

export function activate() {
  Object.values(charts).forEach((c) => c.resize());
}
export function themeChanged() {
  renderLayout();
  drawCharts(lastSeries);
  renderDataSince();
}

// For the browser tests of the chart logic.
export const chartHelpers = { increases, binaryAxis, dataSinceText };
