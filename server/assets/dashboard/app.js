// The supervisors' dashboard: log in, load the snapshot
// (GET /api/v1/supervision), then follow the live feed (GET /api/v1/live)
// and apply its events to the page in place. Plain JavaScript, no build step
// and nothing loaded from outside the server: estates run it on intranets.
"use strict";

const API = {
  login: "/api/v1/auth/login",
  refresh: "/api/v1/auth/refresh",
  snapshot: "/api/v1/supervision",
  live: "/api/v1/live",
  reviews: (ticketId) => `/api/v1/tickets/${encodeURIComponent(ticketId)}/reviews`,
};
const SESSION_KEY = "estate-sync.dashboard.session";
const LANGUAGE_KEY = "estate-sync.dashboard.language";
/// This tab's id: its refresh token is bound to it. Per tab (session
/// storage), so that two tabs never share, or end, each other's session.
const DEVICE_KEY = "estate-sync.dashboard.device";
/// The access token is renewed this long before it expires.
const RENEW_AHEAD_MS = 60000;
/// Reconnect delays after a dropped feed grow to this, in milliseconds.
const MAX_RECONNECT_DELAY_MS = 15000;
/// How often ages and online states are recomputed between events.
const TICK_MS = 15000;
/// How often the snapshot is read again: what time alone changes (a ticket
/// entering its due-soon window) is not on the live feed.
const SNAPSHOT_REFRESH_MS = 60000;
/// A push may flag facts for review, change the tickets a technician holds
/// or take a deadline off the list, none of which its event carries: the
/// snapshot is read again this long after the last push seen, once for a
/// burst of pushes.
const AFTER_PUSH_REFRESH_MS = 1500;
/// Events kept to re-apply over a snapshot read while they arrived.
const MAX_RECENT_EVENTS = 500;
/// The clock offset beyond which the server stops trusting a device's times.
const OFFSET_BOUND_MS = 10 * 60 * 1000;

// ---- Strings: one table per language ---------------------------------------

const STRINGS = {
  "zh-CN": {
    title: "外勤同步监控",
    language: "语言",
    logIn: "登录",
    logOut: "退出",
    loginHeading: "主管登录",
    loginHint: "使用与工单系统相同的账号。",
    username: "用户名",
    password: "密码",
    wrongPassword: "用户名或密码错误。",
    forbidden: "此账号无权查看同步监控。",
    unreachable: "无法连接服务器，请稍后重试。",
    signedInAs: (user) => `已登录：${user}`,
    live: "实时",
    connecting: "连接中…",
    reconnecting: (seconds) => `连接中断，${seconds} 秒后重连`,
    metricOnline: "在线设备",
    metricPending: "待上传变更",
    metricAtRisk: "风险工单",
    metricReview: "待复核",
    crewHeading: "外勤人员与设备",
    colTechnician: "技术员",
    colDevice: "设备",
    colContact: "状态",
    colLastPush: "上次上传",
    colLastPull: "上次下载",
    colPending: "待上传",
    colOldest: "最早未传",
    colOffset: "时钟偏差",
    colVersion: "版本",
    colHeld: "持有工单",
    colFlagged: "待复核",
    online: "在线",
    offline: (ago) => `离线 · ${ago}`,
    pending: (count) => `${count} 待上传`,
    inSync: "已同步",
    never: "从未",
    noDevices: "尚无设备同步过。",
    leftOff: (count) => `另有 ${count} 项未列出`,
    offsetBeyond: "超出 10 分钟，设备时间不被采信",
    riskHeading: "风险工单",
    colTicket: "工单",
    colRule: "时限",
    colDue: "截止",
    colState: "状态",
    dueSoon: "即将到期",
    overdue: "已超时",
    atRiskOffline: "技术员离线",
    noRisk: "没有即将到期或超时的工单。",
    reviewHeading: "复核队列",
    colFact: "记录",
    colWhy: "原因",
    colRecorded: "记录于",
    colDecision: "处理",
    noReview: "没有待复核的记录。",
    accept: "采信",
    annotate: "批注",
    annotationLabel: "批注内容",
    annotationPlaceholder: "批注（批注时必填）",
    reviewFailed: (message) => `复核未成功：${message}`,
    close: "关闭",
    detailHeading: (user) => `技术员 ${user}`,
    detailDevices: "设备",
    detailRisk: "风险工单",
    detailReview: "待复核记录",
    none: "无",
    reasons: { late: "迟到的记录", untrusted_time: "设备时间不可信" },
    withDetail: (text, detail) => `${text}（${detail}）`,
    listSeparator: "；",
    lateReasons: {
      reassigned_away: "离线期间已改派",
      cancelled: "离线期间已取消",
      closed: "离线期间已关闭",
      converted: "离线期间已转协调单",
    },
    facts: { arrival: "到场", note: "备注", result: "处理结果", signature: "业主签字" },
    duties: {
      arrival: "到场",
      finish: "完成",
      convert: "转协调单",
      return_to_dispatcher: "交回调度",
      book_site_inspection: "预约查看",
      reply_to_owner: "回复业主",
      check: "跟进",
      joint_talk: "升级：联合约谈业主",
      follow_up: "回访",
    },
    ago: { now: "刚刚", seconds: (n) => `${n} 秒前`, minutes: (n) => `${n} 分钟前`, hours: (n) => `${n} 小时前`, days: (n) => `${n} 天前` },
    within: { minutes: (n) => `${n} 分钟后`, hours: (n) => `${n} 小时后`, days: (n) => `${n} 天后` },
    age: { seconds: (n) => `${n} 秒`, minutes: (n) => `${n} 分钟`, hours: (n) => `${n} 小时`, days: (n) => `${n} 天` },
  },
  en: {
    title: "Field sync monitor",
    language: "Language",
    logIn: "Log in",
    logOut: "Log out",
    loginHeading: "Supervisor login",
    loginHint: "Use the same account as for tickets.",
    username: "Username",
    password: "Password",
    wrongPassword: "Wrong username or password.",
    forbidden: "This account may not see the sync monitor.",
    unreachable: "The server cannot be reached; try again shortly.",
    signedInAs: (user) => `Signed in: ${user}`,
    live: "Live",
    connecting: "Connecting…",
    reconnecting: (seconds) => `Feed dropped, reconnecting in ${seconds} s`,
    metricOnline: "Devices online",
    metricPending: "Changes to upload",
    metricAtRisk: "Tickets at risk",
    metricReview: "Awaiting review",
    crewHeading: "Crew and devices",
    colTechnician: "Technician",
    colDevice: "Device",
    colContact: "Status",
    colLastPush: "Last push",
    colLastPull: "Last pull",
    colPending: "Outbox",
    colOldest: "Oldest pending",
    colOffset: "Clock offset",
    colVersion: "Version",
    colHeld: "Tickets held",
    colFlagged: "Flagged",
    online: "Online",
    offline: (ago) => `Offline · ${ago}`,
    pending: (count) => `${count} pending`,
    inSync: "in sync",
    never: "never",
    noDevices: "No device has synced yet.",
    leftOff: (count) => `${count} more not listed`,
    offsetBeyond: "Beyond 10 minutes: the device's times are not trusted",
    riskHeading: "Tickets at risk",
    colTicket: "Ticket",
    colRule: "Deadline",
    colDue: "Due",
    colState: "State",
    dueSoon: "Due soon",
    overdue: "Overdue",
    atRiskOffline: "At risk while offline",
    noRisk: "No ticket is due soon or overdue.",
    reviewHeading: "Review queue",
    colFact: "Fact",
    colWhy: "Why",
    colRecorded: "Recorded",
    colDecision: "Decision",
    noReview: "Nothing awaits review.",
    accept: "Accept",
    annotate: "Annotate",
    annotationLabel: "Annotation",
    annotationPlaceholder: "Note (required to annotate)",
    reviewFailed: (message) => `The review failed: ${message}`,
    close: "Close",
    detailHeading: (user) => `Technician ${user}`,
    detailDevices: "Devices",
    detailRisk: "Tickets at risk",
    detailReview: "Facts awaiting review",
    none: "None",
    reasons: { late: "Late fact", untrusted_time: "Untrusted device time" },
    withDetail: (text, detail) => `${text} (${detail})`,
    listSeparator: "; ",
    lateReasons: {
      reassigned_away: "reassigned while offline",
      cancelled: "cancelled while offline",
      closed: "closed while offline",
      converted: "converted while offline",
    },
    facts: { arrival: "Arrival", note: "Note", result: "Result", signature: "Owner signature" },
    duties: {
      arrival: "Arrival",
      finish: "Finish",
      convert: "Convert to coordination ticket",
      return_to_dispatcher: "Return to dispatcher",
      book_site_inspection: "Book site inspection",
      reply_to_owner: "Reply to owner",
      check: "Check",
      joint_talk: "Escalated: joint talk with the owner",
      follow_up: "Follow-up",
    },
    ago: { now: "just now", seconds: (n) => `${n} s ago`, minutes: (n) => `${n} min ago`, hours: (n) => `${n} h ago`, days: (n) => `${n} d ago` },
    within: { minutes: (n) => `in ${n} min`, hours: (n) => `in ${n} h`, days: (n) => `in ${n} d` },
    age: { seconds: (n) => `${n} s`, minutes: (n) => `${n} min`, hours: (n) => `${n} h`, days: (n) => `${n} d` },
  },
};

// ---- State -------------------------------------------------------------------

const state = {
  language: STRINGS[localStorage.getItem(LANGUAGE_KEY)] ? localStorage.getItem(LANGUAGE_KEY) : "zh-CN",
  session: readSession(),
  snapshot: null,
  /// Server time minus browser time, so that ages follow the server's clock.
  skewMs: 0,
  lastEventId: 0,
  /// The last events applied, oldest first (see `loadSnapshot`).
  recentEvents: [],
  feed: null,
  reconnectDelayMs: 1000,
  reconnectTimer: null,
  detailUser: null,
  /// Annotations being typed, by mutation id: they survive re-rendering.
  noteDrafts: new Map(),
  afterPushTimer: null,
  /// The access token's renewal in flight, and the timer of the next one.
  renewing: null,
  renewTimer: null,
};

function readSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY));
  } catch {
    return null;
  }
}

function t(key, ...args) {
  const value = STRINGS[state.language][key];
  return typeof value === "function" ? value(...args) : value;
}

function serverNow() {
  return Date.now() + state.skewMs;
}

// ---- Formatting ----------------------------------------------------------------

function formatSpan(milliseconds, table) {
  const seconds = Math.max(0, Math.round(milliseconds / 1000));
  if (seconds < 60) return table.seconds(seconds);
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return table.minutes(minutes);
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return table.hours(hours);
  return table.days(Math.floor(hours / 24));
}

function formatAgo(isoTime) {
  if (!isoTime) return t("never");
  const elapsed = serverNow() - Date.parse(isoTime);
  if (elapsed < 5000) return t("ago").now;
  return formatSpan(elapsed, t("ago"));
}

function formatDue(isoTime) {
  const remaining = Date.parse(isoTime) - serverNow();
  if (remaining <= 0) return formatSpan(-remaining, t("ago"));
  const table = t("within");
  return formatSpan(remaining, { seconds: () => table.minutes(1), ...table });
}

function formatClock(isoTime) {
  const locale = state.language === "en" ? "en-GB" : "zh-CN";
  return new Date(isoTime).toLocaleString(locale, {
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  });
}

function formatOffset(milliseconds) {
  if (Math.abs(milliseconds) < 50) return "0.0 s";
  const sign = milliseconds > 0 ? "+" : milliseconds < 0 ? "−" : "±";
  const seconds = Math.abs(milliseconds) / 1000;
  if (seconds < 60) return `${sign}${seconds.toFixed(1)} s`;
  return `${sign}${(seconds / 60).toFixed(1)} min`;
}

function ticketLabel(ticketId, serialNumber) {
  return serialNumber || ticketId;
}

/// Builds an element: `el("td", {class: "x"}, "text", child)`.
function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function badge(kind, text) {
  return el("span", { class: `badge badge-${kind}` }, text);
}

// ---- Derived state -------------------------------------------------------------

function isOnline(row) {
  const windowMs = state.snapshot.online_window_minutes * 60 * 1000;
  return serverNow() - Date.parse(row.last_contact_at) <= windowMs;
}

/// A ticket's technician none of whose devices is online. The snapshot's own
/// judgement stands when its crew list was cut short.
function atRiskWhileOffline(item) {
  if (!item.technician) return false;
  if (state.snapshot.crew_left_off > 0) return item.at_risk_while_offline;
  return !state.snapshot.crew.some((row) => row.user === item.technician && isOnline(row));
}

// ---- Rendering -----------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = state.language;
  document.title = `${t("title")} · estate-sync`;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  document.getElementById("language").value = state.language;
  if (state.session) {
    document.getElementById("signed-in-as").textContent = t("signedInAs", state.session.user);
  }
  renderLiveStatus();
  if (state.snapshot) render();
}

function render() {
  renderReview();
  renderTimed();
}

/// What changes with time alone (ages, online states), and with contacts.
function renderTimed() {
  renderSummary();
  renderCrew();
  renderRisk();
  renderDetail();
}

function renderSummary() {
  const { crew, at_risk, review_queue } = state.snapshot;
  const online = crew.filter(isOnline).length;
  document.getElementById("metric-online").textContent = `${online} / ${crew.length}`;
  document.getElementById("metric-pending").textContent = crew.reduce((sum, row) => sum + row.outbox_depth, 0);
  document.getElementById("metric-at-risk").textContent = at_risk.length + state.snapshot.at_risk_left_off;
  document.getElementById("metric-review").textContent = review_queue.length + state.snapshot.review_left_off;
}

function crewCells(row) {
  const online = isOnline(row);
  const offsetBeyond = Math.abs(row.clock_offset_ms) > OFFSET_BOUND_MS;
  return [
    el("th", { scope: "row" },
      el("button", { type: "button", class: "link", onclick: () => openDetail(row.user) }, row.user)),
    el("td", { class: "mono" }, row.device_id),
    el("td", {},
      online ? badge("ok", t("online")) : badge("muted", t("offline", formatAgo(row.last_contact_at)))),
    el("td", {}, formatAgo(row.last_push_at)),
    el("td", {}, formatAgo(row.last_pull_at)),
    el("td", { class: "pending" },
      row.outbox_depth > 0 ? badge("warn", t("pending", row.outbox_depth)) : badge("ok", t("inSync"))),
    el("td", {},
      row.outbox_depth > 0 && row.oldest_pending_age_ms != null ? formatSpan(row.oldest_pending_age_ms, t("age")) : "–"),
    el("td", { class: offsetBeyond ? "mono alert-text" : "mono", title: offsetBeyond ? t("offsetBeyond") : null },
      formatOffset(row.clock_offset_ms)),
    el("td", { class: "mono" }, `${row.app_version} · v${row.protocol_version}`),
    el("td", { class: "numeric" }, row.tickets_held ?? "–"),
    el("td", { class: "numeric" },
      row.awaiting_review > 0 ? badge("alert", row.awaiting_review) : "0"),
  ];
}

function renderCrew() {
  const body = document.querySelector("#crew-table tbody");
  const rows = state.snapshot.crew.map((row) =>
    el("tr", {
      "data-device": row.device_id,
      class: row.outbox_depth > 0 ? "row-pending" : null,
    }, crewCells(row)));
  if (rows.length === 0) {
    rows.push(el("tr", {}, el("td", { colspan: 11, class: "empty" }, t("noDevices"))));
  }
  body.replaceChildren(...rows);
  const leftOff = state.snapshot.crew_left_off;
  document.getElementById("crew-note").textContent = leftOff > 0 ? t("leftOff", leftOff) : "";
}

function riskCells(item) {
  const due = item.due;
  const offline = atRiskWhileOffline(item);
  return [
    el("th", { scope: "row" },
      el("span", { class: "mono" }, ticketLabel(due.ticket_id, due.serial_number)),
      el("div", { class: "muted small" }, due.location)),
    el("td", {}, `${due.rule} ${t("duties")[due.duty] ?? due.duty}`),
    el("td", {}, el("time", { datetime: due.due_at }, formatClock(due.due_at)),
      el("div", { class: "muted small" }, formatDue(due.due_at))),
    el("td", {},
      due.state === "overdue" ? badge("alert", t("overdue")) : badge("warn", t("dueSoon")),
      offline ? badge("offline", t("atRiskOffline")) : null),
    el("td", {}, item.technician
      ? el("button", { type: "button", class: "link", onclick: () => openDetail(item.technician) }, item.technician)
      : "–"),
  ];
}

function renderRisk() {
  const body = document.querySelector("#risk-table tbody");
  const rows = state.snapshot.at_risk.map((item) =>
    el("tr", { "data-ticket": item.due.ticket_id, "data-rule": item.due.rule }, riskCells(item)));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 5, class: "empty" }, t("noRisk"))));
  body.replaceChildren(...rows);
  const leftOff = state.snapshot.at_risk_left_off;
  document.getElementById("risk-note").textContent = leftOff > 0 ? t("leftOff", leftOff) : "";
}

function reasonText(item) {
  return item.reasons.map((reason) => {
    const text = t("reasons")[reason] ?? reason;
    if (reason === "late" && item.late) return t("withDetail", text, t("lateReasons")[item.late.reason] ?? item.late.reason);
    return text;
  }).join(t("listSeparator"));
}

function reviewCells(item) {
  const noteId = `note-${item.mutation_id}`;
  const note = el("input", {
    id: noteId,
    class: "note-input",
    maxlength: 1000,
    placeholder: t("annotationPlaceholder"),
    value: state.noteDrafts.get(item.mutation_id) ?? "",
    oninput: (event) => state.noteDrafts.set(item.mutation_id, event.target.value),
  });
  const failure = el("p", { class: "form-error", role: "alert", hidden: true });
  const decide = (decision) => submitReview(item, decision, note.value, failure);
  return [
    el("th", { scope: "row" }, el("span", { class: "mono" }, ticketLabel(item.ticket_id, item.serial_number))),
    el("td", {}, t("facts")[item.fact] ?? item.fact,
      el("div", { class: "muted small" }, `${item.recorded_by} · ${item.device}`)),
    el("td", {}, reasonText(item)),
    el("td", {}, el("time", { datetime: item.recorded_at }, formatClock(item.recorded_at))),
    el("td", { class: "decision" },
      el("label", { for: noteId, class: "visually-hidden" }, t("annotationLabel")),
      note,
      el("div", { class: "decision-buttons" },
        el("button", { type: "button", class: "button-primary", onclick: () => decide("accept") }, t("accept")),
        el("button", { type: "button", class: "button-secondary", onclick: () => decide("annotate") }, t("annotate"))),
      failure),
  ];
}

function renderReview() {
  // A supervisor may be typing an annotation: keep the caret where it was.
  const focused = document.activeElement;
  const focusedId = focused?.closest("#review-table") ? focused.id : null;
  const selection = focusedId && focused.selectionStart !== undefined ? [focused.selectionStart, focused.selectionEnd] : null;
  const body = document.querySelector("#review-table tbody");
  const rows = state.snapshot.review_queue.map((item) =>
    el("tr", { "data-mutation": item.mutation_id }, reviewCells(item)));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 5, class: "empty" }, t("noReview"))));
  body.replaceChildren(...rows);
  const refocus = focusedId ? document.getElementById(focusedId) : null;
  if (refocus) {
    refocus.focus();
    if (selection && refocus.setSelectionRange) refocus.setSelectionRange(...selection);
  }
  const leftOff = state.snapshot.review_left_off;
  document.getElementById("review-note").textContent = leftOff > 0 ? t("leftOff", leftOff) : "";
}

function detailList(title, items) {
  return el("div", { class: "detail-block" },
    el("h3", {}, title),
    items.length > 0 ? el("ul", {}, items.map((item) => el("li", {}, item))) : el("p", { class: "muted" }, t("none")));
}

function renderDetail() {
  const panel = document.getElementById("detail");
  const user = state.detailUser;
  panel.hidden = user === null;
  if (user === null) return;
  const { crew, at_risk, review_queue } = state.snapshot;
  document.getElementById("detail-heading").textContent = t("detailHeading", user);
  const devices = crew.filter((row) => row.user === user).map((row) => [
    el("span", { class: "mono" }, row.device_id), " ",
    isOnline(row) ? badge("ok", t("online")) : badge("muted", t("offline", formatAgo(row.last_contact_at))), " ",
    row.outbox_depth > 0 ? badge("warn", t("pending", row.outbox_depth)) : badge("ok", t("inSync")),
    el("span", { class: "muted small" }, ` ${t("colOffset")} ${formatOffset(row.clock_offset_ms)} · ${row.app_version}`),
  ]);
  const risks = at_risk.filter((item) => item.technician === user).map((item) => [
    el("span", { class: "mono" }, ticketLabel(item.due.ticket_id, item.due.serial_number)), " ",
    `${item.due.rule} ${t("duties")[item.due.duty] ?? item.due.duty} · ${formatDue(item.due.due_at)} `,
    item.due.state === "overdue" ? badge("alert", t("overdue")) : badge("warn", t("dueSoon")),
  ]);
  const reviews = review_queue.filter((item) => item.recorded_by === user).map((item) => [
    el("span", { class: "mono" }, ticketLabel(item.ticket_id, item.serial_number)), " ",
    `${t("facts")[item.fact] ?? item.fact} · ${reasonText(item)}`,
  ]);
  document.getElementById("detail-body").replaceChildren(el("div", { class: "detail-grid" },
    detailList(t("detailDevices"), devices),
    detailList(t("detailRisk"), risks),
    detailList(t("detailReview"), reviews)));
}

function openDetail(user) {
  state.detailUser = user;
  renderDetail();
  document.getElementById("detail").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

let liveStatus = { kind: "connecting", seconds: 0 };

function setLiveStatus(kind, seconds = 0) {
  liveStatus = { kind, seconds };
  renderLiveStatus();
}

function renderLiveStatus() {
  const element = document.getElementById("live-status");
  element.hidden = !state.session;
  element.className = `live-status live-${liveStatus.kind}`;
  element.textContent = liveStatus.kind === "live" ? t("live")
    : liveStatus.kind === "reconnecting" ? t("reconnecting", liveStatus.seconds) : t("connecting");
}

// ---- API -----------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/// A request to the API. A refused access token is renewed with the refresh
/// token once and the request sent again; only a refused refresh ends the
/// session (the 401 reaches the caller, which logs out).
async function api(path, options = {}) {
  let response = await send(path, options);
  if (response.status === 401 && state.session && (await renewSession())) {
    response = await send(path, options);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, body?.code ?? "unknown", body?.message ?? response.statusText);
  }
  return body;
}

function send(path, options) {
  const headers = { Accept: "application/json", ...options.headers };
  if (state.session) headers.Authorization = `Bearer ${state.session.token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, {
    method: options.method ?? "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
}

/// This tab's device id, made once.
function deviceId() {
  let id = sessionStorage.getItem(DEVICE_KEY);
  if (!id) {
    const random = new Uint8Array(8);
    crypto.getRandomValues(random);
    id = "dashboard-" + Array.from(random, (byte) => byte.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

function keepSession(login) {
  state.session = {
    token: login.token,
    refresh_token: login.refresh_token,
    user: login.user,
    display_name: login.display_name,
    role: login.role,
    expires_at: login.expires_at,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
  scheduleRenewal();
}

/// A new access token for the refresh token; true when it worked. One
/// renewal at a time: concurrent callers wait for the same one.
function renewSession() {
  if (!state.renewing) {
    state.renewing = (async () => {
      try {
        const response = await fetch(API.refresh, {
          method: "POST",
          headers: { Accept: "application/json", "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: state.session.refresh_token, device_id: deviceId() }),
        });
        if (!response.ok) return false;
        keepSession(await response.json());
        return true;
      } catch {
        return false;
      } finally {
        state.renewing = null;
      }
    })();
  }
  return state.renewing;
}

function scheduleRenewal() {
  clearTimeout(state.renewTimer);
  if (!state.session) return;
  const inMs = Date.parse(state.session.expires_at) - Date.now() - RENEW_AHEAD_MS;
  state.renewTimer = setTimeout(() => {
    if (state.session) renewSession();
  }, Math.max(inMs, 1000));
}

/// Reads the snapshot. Events that arrived while it was read and are newer
/// than it are applied to it again, so that it never steps back.
async function loadSnapshot() {
  const snapshot = await api(API.snapshot);
  state.skewMs = Date.parse(snapshot.generated_at) - Date.now();
  state.snapshot = snapshot;
  state.lastEventId = Math.max(state.lastEventId, snapshot.last_event_id);
  for (const live of state.recentEvents) {
    if (live.id > snapshot.last_event_id) applyEvent(live.body);
  }
  render();
}

function refreshSnapshot() {
  loadSnapshot().catch((error) => {
    if (error.status === 401) logOut();
    else console.warn("snapshot:", error);
  });
}

function refreshAfterPush() {
  if (state.afterPushTimer !== null) return;
  state.afterPushTimer = setTimeout(() => {
    state.afterPushTimer = null;
    if (state.snapshot) refreshSnapshot();
  }, AFTER_PUSH_REFRESH_MS);
}

async function submitReview(item, decision, note, failure) {
  const request = { mutation_id: item.mutation_id, decision };
  if (note.trim() !== "") request.note = note.trim();
  failure.hidden = true;
  try {
    await api(API.reviews(item.ticket_id), { method: "POST", body: request });
    // The live feed's fact_reviewed event would do the same; do not wait for it.
    removeReviewItem(item.mutation_id);
    render();
  } catch (error) {
    if (error.status === 401) return logOut();
    failure.textContent = t("reviewFailed", error.message);
    failure.hidden = false;
  }
}

// ---- The live feed -------------------------------------------------------------

/// Reads the Server-Sent Events of the live feed with fetch(), which, unlike
/// EventSource, can send the Authorization header. Resumes after the last
/// event applied (Last-Event-ID) whenever the stream drops.
async function follow() {
  clearTimeout(state.reconnectTimer);
  state.feed?.abort();
  const feed = new AbortController();
  state.feed = feed;
  setLiveStatus("connecting");
  try {
    const response = await fetch(API.live, {
      headers: {
        Accept: "text/event-stream",
        Authorization: `Bearer ${state.session.token}`,
        "Last-Event-ID": String(state.lastEventId),
      },
      signal: feed.signal,
      cache: "no-store",
    });
    if (response.status === 401) {
      // Renewed: reconnect at once with the new token; refused: log out.
      if (await renewSession()) return follow();
      return logOut();
    }
    if (!response.ok || !response.body) throw new Error(`live feed answered ${response.status}`);
    setLiveStatus("live");
    state.reconnectDelayMs = 1000;
    await readEvents(response.body, feed);
  } catch (error) {
    if (feed.signal.aborted) return;
    console.warn("live feed:", error);
  }
  if (!feed.signal.aborted) scheduleReconnect();
}

function scheduleReconnect() {
  const delayMs = state.reconnectDelayMs;
  state.reconnectDelayMs = Math.min(delayMs * 2, MAX_RECONNECT_DELAY_MS);
  setLiveStatus("reconnecting", Math.round(delayMs / 1000));
  state.reconnectTimer = setTimeout(follow, delayMs);
}

/// The SSE wire format: fields `id`, `event`, `data` (`retry` sets the
/// reconnect delay); a blank line ends an event; lines starting with `:`
/// are keep-alive comments.
async function readEvents(stream, feed) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { id: null, name: "message", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done || feed.signal.aborted) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length > 0) await dispatch(event, feed);
        event = { id: null, name: "message", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      const content = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") event.id = content;
      else if (field === "event") event.name = content;
      else if (field === "data") event.data.push(content);
      else if (field === "retry" && /^\d+$/.test(content)) state.reconnectDelayMs = Number(content);
    }
  }
}

async function dispatch(event, feed) {
  const live = JSON.parse(event.data.join("\n"));
  if (live.body.type === "reset") {
    // Events were missed: start again from a fresh snapshot and its position.
    state.lastEventId = 0;
    await loadSnapshot();
    if (!feed.signal.aborted) follow();
    return;
  }
  if (live.id <= state.lastEventId) return;
  state.lastEventId = live.id;
  state.recentEvents.push(live);
  if (state.recentEvents.length > MAX_RECENT_EVENTS) state.recentEvents.shift();
  if (applyEvent(live.body)) refreshSnapshot();
  if (live.body.type === "fact_reviewed") render();
  else renderTimed();
}

/// Applies one event to the snapshot; true when the snapshot lacks what the
/// event refers to and must be read again.
function applyEvent(body) {
  switch (body.type) {
    case "device_contact":
      if (body.contact === "push") refreshAfterPush();
      return applyContact(body.device);
    case "deadline_missed":
      return applyDeadlineMissed(body);
    case "fact_reviewed":
      removeReviewItem(body.mutation_id);
      return false;
    default:
      return false;
  }
}

function applyContact(device) {
  const crew = state.snapshot.crew;
  const index = crew.findIndex((row) => row.device_id === device.device_id);
  const previous = index === -1 ? crew.find((row) => row.user === device.user) : crew[index];
  const row = {
    ...device,
    online: true,
    // Not part of a contact: kept from the row, or from a sibling device.
    tickets_held: previous?.tickets_held ?? null,
    awaiting_review: index === -1 ? 0 : crew[index].awaiting_review,
  };
  delete row.estate;
  delete row.last_seq;
  if (index === -1) {
    crew.push(row);
    crew.sort((a, b) => (a.device_id < b.device_id ? -1 : 1));
  } else {
    crew[index] = row;
  }
  // A new device: its tickets held and flagged facts come with the snapshot.
  return index === -1;
}

function applyDeadlineMissed(body) {
  const item = state.snapshot.at_risk.find(
    (entry) => entry.due.ticket_id === body.ticket_id && entry.due.rule === body.rule);
  if (!item) return true;
  item.due.state = "overdue";
  item.due.due_at = body.due_at;
  return false;
}

function removeReviewItem(mutationId) {
  const queue = state.snapshot.review_queue;
  const index = queue.findIndex((item) => item.mutation_id === mutationId);
  if (index === -1) return;
  const [item] = queue.splice(index, 1);
  state.noteDrafts.delete(mutationId);
  const row = state.snapshot.crew.find((entry) => entry.device_id === item.device);
  if (row && row.awaiting_review > 0) row.awaiting_review -= 1;
}

// ---- Session -------------------------------------------------------------------

async function logIn(event) {
  event.preventDefault();
  const form = event.target;
  const failure = document.getElementById("login-error");
  failure.hidden = true;
  try {
    const login = await api(API.login, {
      method: "POST",
      body: { username: form.username.value.trim(), password: form.password.value, device_id: deviceId() },
    });
    keepSession(login);
    form.password.value = "";
    await start();
  } catch (error) {
    failure.textContent = error.status === 401 ? t("wrongPassword") : error instanceof ApiError ? error.message : t("unreachable");
    failure.hidden = false;
  }
}

function logOut() {
  state.feed?.abort();
  clearTimeout(state.reconnectTimer);
  clearTimeout(state.renewTimer);
  state.session = null;
  state.snapshot = null;
  state.lastEventId = 0;
  state.recentEvents = [];
  state.detailUser = null;
  sessionStorage.removeItem(SESSION_KEY);
  showView();
}

function showView() {
  const signedIn = state.session !== null;
  document.getElementById("login-view").hidden = signedIn;
  document.getElementById("dashboard-view").hidden = !signedIn || state.snapshot === null;
  document.getElementById("signed-in-as").hidden = !signedIn;
  document.getElementById("log-out").hidden = !signedIn;
  applyLanguage();
}

async function start() {
  try {
    await loadSnapshot();
  } catch (error) {
    const message = error.status === 403 ? t("forbidden") : error.message;
    logOut();
    const failure = document.getElementById("login-error");
    failure.textContent = message;
    failure.hidden = false;
    return;
  }
  showView();
  follow();
}

function main() {
  document.getElementById("login-form").addEventListener("submit", logIn);
  document.getElementById("log-out").addEventListener("click", logOut);
  document.getElementById("detail-close").addEventListener("click", () => {
    state.detailUser = null;
    renderDetail();
  });
  document.getElementById("language").addEventListener("change", (event) => {
    state.language = event.target.value in STRINGS ? event.target.value : "zh-CN";
    localStorage.setItem(LANGUAGE_KEY, state.language);
    applyLanguage();
  });
  // Ages and online states move with time even when no event arrives.
  setInterval(() => { if (state.snapshot) renderTimed(); }, TICK_MS);
  setInterval(() => { if (state.snapshot) refreshSnapshot(); }, SNAPSHOT_REFRESH_MS);
  showView();
  if (state.session) {
    scheduleRenewal();
    start();
  }
}

main();
