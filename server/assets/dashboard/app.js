// The supervisors' dashboard: log in, load the snapshot
// (GET /api/v1/supervision), then follow the live feed (GET /api/v1/live)
// and apply its events to the page in place; the tables keep the sort and
// filter the supervisor chose through every re-render. Plain JavaScript, no build step
// and nothing loaded from outside the server: estates run it on intranets.
"use strict";

const API = {
  login: "/api/v1/auth/login",
  refresh: "/api/v1/auth/refresh",
  snapshot: "/api/v1/supervision",
  live: "/api/v1/live",
  reviews: (ticketId) => `/api/v1/tickets/${encodeURIComponent(ticketId)}/reviews`,
  people: "/api/v1/people",
};
/// Where a ticket opens: its page in the office console.
const CONSOLE_TICKET = (ticketId) => `/console#/tickets/${encodeURIComponent(ticketId)}`;
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
/// The estate's people are read again for an unknown user at most this often.
const PEOPLE_RETRY_MS = 60000;

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
    signedInAs: (name) => `已登录：${name}`,
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
    shownOf: (shown, total) => `显示 ${shown} / ${total}`,
    filterLabel: "筛选",
    filterPlaceholder: "筛选…",
    noMatch: "没有符合筛选条件的行。",
    onlyAttention: "只看需关注的设备",
    noAttention: "没有需关注的设备。",
    onlyAttentionHint: "有待上传变更、有待复核记录、时钟偏差超过 10 分钟，或离线时仍持有工单的设备",
    openInConsole: "在办公控制台中打开工单",
    offsetBeyond: "超出 10 分钟，设备时间不被采信",
    clockSlow: (span) => `设备时钟慢 ${span}`,
    clockFast: (span) => `设备时钟快 ${span}`,
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
    detailHeading: (name) => `技术员 ${name}`,
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
    justNow: "刚刚",
    ago: (span) => `${span}前`,
    within: (span) => `${span}后`,
    // `minutesPart`: minutes beside another unit ("3 分 12 秒", "2 小时 5 分").
    units: {
      seconds: (n) => `${n} 秒`,
      minutes: (n) => `${n} 分钟`,
      minutesPart: (n) => `${n} 分`,
      hours: (n) => `${n} 小时`,
      days: (n) => `${n} 天`,
    },
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
    signedInAs: (name) => `Signed in: ${name}`,
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
    shownOf: (shown, total) => `${shown} of ${total} shown`,
    filterLabel: "Filter",
    filterPlaceholder: "Filter…",
    noMatch: "No row matches the filter.",
    onlyAttention: "Only devices needing attention",
    noAttention: "No device needs attention.",
    onlyAttentionHint: "With changes waiting, facts awaiting review, a clock off by more than 10 minutes, or tickets held while offline",
    openInConsole: "Open the ticket in the office console",
    offsetBeyond: "Beyond 10 minutes: the device's times are not trusted",
    clockSlow: (span) => `The device's clock is ${span} slow`,
    clockFast: (span) => `The device's clock is ${span} fast`,
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
    detailHeading: (name) => `Technician ${name}`,
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
    justNow: "just now",
    ago: (span) => `${span} ago`,
    within: (span) => `in ${span}`,
    units: {
      seconds: (n) => `${n} s`,
      minutes: (n) => `${n} min`,
      minutesPart: (n) => `${n} min`,
      hours: (n) => `${n} h`,
      days: (n) => `${n} d`,
    },
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
  /// Each table's sort column (its `data-sort`), direction and filter, kept
  /// across the re-rendering of every refresh and event.
  tables: {
    crew: { column: null, descending: false, filter: "", attentionOnly: false },
    risk: { column: null, descending: false, filter: "" },
    review: { column: null, descending: false, filter: "" },
  },
  /// The estate's people by user id (GET /api/v1/people), for their names;
  /// when they were last asked for, and the request in flight.
  people: new Map(),
  peopleAskedAt: null,
  peopleReading: null,
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

/// A duration in words, in its two largest units: "2 小时 5 分", "3 d 4 h".
/// Seconds follow minutes only `withSeconds` (a clock offset stands still;
/// an age would be stale by the next tick), and a duration under ten seconds
/// keeps its tenths `withTenths` ("0.8 秒").
function formatDuration(milliseconds, { withSeconds = false, withTenths = false } = {}) {
  const units = t("units");
  const absolute = Math.abs(milliseconds);
  if (withTenths && absolute < 9950) return units.seconds((absolute / 1000).toFixed(1));
  const seconds = Math.round(absolute / 1000);
  if (seconds < 60) return units.seconds(seconds);
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return withSeconds && seconds % 60 > 0
      ? `${units.minutesPart(minutes)} ${units.seconds(seconds % 60)}`
      : units.minutes(minutes);
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return withRest(units.hours(hours), minutes % 60, units.minutesPart);
  return withRest(units.days(Math.floor(hours / 24)), hours % 24, units.hours);
}

function withRest(whole, rest, unit) {
  return rest > 0 ? `${whole} ${unit(rest)}` : whole;
}

function formatAgo(isoTime) {
  if (!isoTime) return t("never");
  const elapsed = serverNow() - Date.parse(isoTime);
  if (elapsed < 5000) return t("justNow");
  return t("ago", formatDuration(elapsed));
}

function formatDue(isoTime) {
  const remaining = Date.parse(isoTime) - serverNow();
  if (remaining <= 0) return t("ago", formatDuration(-remaining));
  return t("within", remaining < 60000 ? t("units").minutes(1) : formatDuration(remaining));
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

/// A device's clock offset, the server's time minus the device's, as the
/// wire has it: "+3 分 12 秒" (the device is slow), "−0.8 s" (fast).
function formatOffset(milliseconds) {
  if (Math.abs(milliseconds) < 50) return t("units").seconds(0);
  const sign = milliseconds > 0 ? "+" : "−";
  return `${sign}${formatDuration(milliseconds, { withSeconds: true, withTenths: true })}`;
}

/// The offset's sign in words, and whether the server still trusts it.
function offsetTitle(milliseconds) {
  if (Math.abs(milliseconds) < 50) return null;
  const span = formatDuration(milliseconds, { withSeconds: true, withTenths: true });
  const words = milliseconds > 0 ? t("clockSlow", span) : t("clockFast", span);
  return Math.abs(milliseconds) > OFFSET_BOUND_MS ? `${words}${t("listSeparator")}${t("offsetBeyond")}` : words;
}

function ticketLabel(ticketId, serialNumber) {
  return serialNumber || ticketId;
}

/// A ticket's serial number (its id while it has none), which opens the
/// ticket in the office console; in a new tab, so that this page keeps
/// following the feed.
function ticketLink(ticketId, serialNumber) {
  return el("a", {
    class: "mono ticket-link",
    href: CONSOLE_TICKET(ticketId),
    target: "_blank",
    rel: "noopener",
    title: t("openInConsole"),
    "data-ticket-id": ticketId,
  }, ticketLabel(ticketId, serialNumber));
}

/// A user's display name, or the id while the estate's people do not list
/// it; an unknown id has them read again, at most once a minute.
function displayName(user) {
  const person = state.people.get(user);
  if (person?.display_name) return person.display_name;
  if (!person && state.session && Date.now() - (state.peopleAskedAt ?? 0) >= PEOPLE_RETRY_MS) loadPeople();
  return user;
}

/// A user by name, with the id in the tooltip; `data-user` keeps the id
/// findable by the table filters.
function userName(user) {
  return el("span", { title: user, "data-user": user }, displayName(user));
}

/// A technician's name that opens their drill-down.
function technicianButton(user) {
  return el("button", { type: "button", class: "link", title: user, "data-user": user, onclick: () => openDetail(user) },
    displayName(user));
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

/// A device a supervisor should look at, as the protocol's
/// `CrewRow::needs_attention` says: changes waiting, facts flagged, a clock
/// the server does not trust, or tickets held while offline.
function needsAttention(row) {
  return row.outbox_depth > 0 || row.awaiting_review > 0
    || Math.abs(row.clock_offset_ms) > OFFSET_BOUND_MS
    || (!isOnline(row) && (row.tickets_held ?? 0) > 0);
}

function dutyText(due) {
  return `${due.rule} ${t("duties")[due.duty] ?? due.duty}`;
}

function ageOf(isoTime) {
  return isoTime ? serverNow() - Date.parse(isoTime) : null;
}

// ---- Tables: sorting and filtering ---------------------------------------------

/// What each sortable column (`data-sort` on its header) orders by: a number
/// or a string, or an array of them compared in turn. Null sorts last in
/// either direction; ties keep the snapshot's order.
const SORT_KEYS = {
  crew: {
    technician: (row) => [displayName(row.user), row.user],
    device: (row) => row.device_id,
    // Ages, so that ascending reads down the column: the latest first.
    contact: (row) => ageOf(row.last_contact_at),
    "last-push": (row) => ageOf(row.last_push_at),
    "last-pull": (row) => ageOf(row.last_pull_at),
    pending: (row) => row.outbox_depth,
    oldest: (row) => (row.outbox_depth > 0 ? row.oldest_pending_age_ms : null),
    // How far off, whichever way: the clocks to fix sort together.
    offset: (row) => Math.abs(row.clock_offset_ms),
    version: (row) => [row.app_version, row.protocol_version],
    held: (row) => row.tickets_held,
    flagged: (row) => row.awaiting_review,
  },
  risk: {
    ticket: (item) => ticketLabel(item.due.ticket_id, item.due.serial_number),
    rule: (item) => dutyText(item.due),
    due: (item) => Date.parse(item.due.due_at),
    // Overdue first; within each, a technician offline first.
    state: (item) => (item.due.state === "overdue" ? 0 : 2) + (atRiskWhileOffline(item) ? 0 : 1),
    technician: (item) => (item.technician ? [displayName(item.technician), item.technician] : null),
  },
  review: {
    ticket: (item) => ticketLabel(item.ticket_id, item.serial_number),
    fact: (item) => [t("facts")[item.fact] ?? item.fact, displayName(item.recorded_by)],
    why: (item) => reasonText(item),
    recorded: (item) => Date.parse(item.recorded_at),
  },
};

const collators = new Map();

/// Strings compare as people read them: numbers by value ("2" before "10"),
/// Chinese by pinyin.
function collator() {
  if (!collators.has(state.language)) {
    collators.set(state.language, new Intl.Collator(state.language, { numeric: true, sensitivity: "base" }));
  }
  return collators.get(state.language);
}

function compareValues(a, b) {
  if (a == null || b == null) return (a == null) - (b == null);
  if (Array.isArray(a)) {
    for (let index = 0; index < a.length; index++) {
      const order = compareValues(a[index], b[index]);
      if (order !== 0) return order;
    }
    return 0;
  }
  if (typeof a === "number" && typeof b === "number") return a - b;
  return collator().compare(String(a), String(b));
}

/// The text a filter looks in: what the row shows, but not its buttons'
/// words, and the user ids behind the names.
function searchText(row) {
  const parts = [];
  for (const cell of row.children) {
    if (!cell.classList.contains("decision")) parts.push(cell.textContent);
  }
  for (const name of row.querySelectorAll("[data-user]")) parts.push(name.dataset.user);
  return parts.join(" ").toLocaleLowerCase();
}

/// The rows ({ item, element }, in the snapshot's order) the supervisor's
/// filter keeps, in the order they chose: every word of the filter must be
/// in a row.
function arrange(name, rows) {
  const view = state.tables[name];
  const words = view.filter.toLocaleLowerCase().split(/\s+/).filter((word) => word !== "");
  const kept = words.length === 0 ? rows : rows.filter(({ element }) => {
    const text = searchText(element);
    return words.every((word) => text.includes(word));
  });
  const sortKey = view.column ? SORT_KEYS[name][view.column] : null;
  if (!sortKey) return kept;
  const direction = view.descending ? -1 : 1;
  return kept
    .map((row) => ({ ...row, key: sortKey(row.item) }))
    // A missing value (never pushed, nobody assigned) stays last either way.
    .sort((a, b) => (a.key == null || b.key == null
      ? compareValues(a.key, b.key)
      : direction * compareValues(a.key, b.key)));
}

/// Fills a table's body with its rows, arranged; labels each cell with its
/// column's heading (the cards of a narrow screen show it), marks the sorted
/// column, and answers how many rows are shown.
function fillTable(name, rows, emptyText) {
  const table = document.getElementById(`${name}-table`);
  const headers = Array.from(table.tHead.rows[0].cells);
  const labels = headers.map((header) => t((header.querySelector("[data-i18n]") ?? header).dataset.i18n));
  const shown = arrange(name, rows);
  for (const { element } of shown) {
    Array.from(element.cells).forEach((cell, index) => { cell.dataset.label = labels[index]; });
  }
  const elements = shown.map((row) => row.element);
  if (elements.length === 0) {
    const text = rows.length === 0 ? emptyText : t("noMatch");
    elements.push(el("tr", {}, el("td", { colspan: headers.length, class: "empty" }, text)));
  }
  table.tBodies[0].replaceChildren(...elements);
  const view = state.tables[name];
  for (const header of headers) {
    if (header.dataset.sort && header.dataset.sort === view.column) {
      header.setAttribute("aria-sort", view.descending ? "descending" : "ascending");
    } else {
      header.removeAttribute("aria-sort");
    }
  }
  return shown.length;
}

/// Under a table's heading: how many rows a filter hides, how many the
/// server left off.
function tableNote(name, shown, total, leftOff) {
  const parts = [];
  if (shown < total) parts.push(t("shownOf", shown, total));
  if (leftOff > 0) parts.push(t("leftOff", leftOff));
  document.getElementById(`${name}-note`).textContent = parts.join(" · ");
}

/// A click on a column's heading sorts by it, ascending; a second click
/// turns the order round.
function sortBy(name, column) {
  const view = state.tables[name];
  view.descending = view.column === column ? !view.descending : false;
  view.column = column;
  renderTable(name);
}

function renderTable(name) {
  if (!state.snapshot) return;
  if (name === "crew") renderCrew();
  else if (name === "risk") renderRisk();
  else renderReview();
}

// ---- Rendering -----------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = state.language;
  document.title = `${t("title")} · estate-sync`;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of document.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
  for (const element of document.querySelectorAll("[data-i18n-title]")) {
    element.title = t(element.dataset.i18nTitle);
  }
  document.getElementById("language").value = state.language;
  if (state.session) {
    const signedIn = document.getElementById("signed-in-as");
    signedIn.textContent = t("signedInAs", state.session.display_name || state.session.user);
    signedIn.title = state.session.user;
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
    el("th", { scope: "row" }, technicianButton(row.user)),
    el("td", { class: "mono" }, row.device_id),
    el("td", {},
      online ? badge("ok", t("online")) : badge("muted", t("offline", formatAgo(row.last_contact_at)))),
    el("td", {}, formatAgo(row.last_push_at)),
    el("td", {}, formatAgo(row.last_pull_at)),
    el("td", { class: "pending" },
      row.outbox_depth > 0 ? badge("warn", t("pending", row.outbox_depth)) : badge("ok", t("inSync"))),
    el("td", {},
      row.outbox_depth > 0 && row.oldest_pending_age_ms != null ? formatDuration(row.oldest_pending_age_ms) : "–"),
    el("td", { class: offsetBeyond ? "offset mono alert-text" : "offset mono", title: offsetTitle(row.clock_offset_ms) },
      formatOffset(row.clock_offset_ms)),
    el("td", { class: "mono" }, `${row.app_version} · v${row.protocol_version}`),
    el("td", { class: "numeric" }, row.tickets_held ?? "–"),
    el("td", { class: "numeric" },
      row.awaiting_review > 0 ? badge("alert", row.awaiting_review) : "0"),
  ];
}

function renderCrew() {
  const { crew } = state.snapshot;
  const considered = state.tables.crew.attentionOnly ? crew.filter(needsAttention) : crew;
  const rows = considered.map((row) => ({
    item: row,
    element: el("tr", {
      "data-device": row.device_id,
      class: row.outbox_depth > 0 ? "row-pending" : null,
    }, crewCells(row)),
  }));
  const empty = crew.length === 0 ? t("noDevices") : t("noAttention");
  const shown = fillTable("crew", rows, empty);
  tableNote("crew", shown, crew.length, state.snapshot.crew_left_off);
}

function riskCells(item) {
  const due = item.due;
  const offline = atRiskWhileOffline(item);
  return [
    el("th", { scope: "row" },
      ticketLink(due.ticket_id, due.serial_number),
      el("div", { class: "muted small" }, due.location)),
    el("td", {}, dutyText(due)),
    el("td", {}, el("time", { datetime: due.due_at }, formatClock(due.due_at)),
      el("div", { class: "muted small" }, formatDue(due.due_at))),
    el("td", {},
      due.state === "overdue" ? badge("alert", t("overdue")) : badge("warn", t("dueSoon")),
      offline ? badge("offline", t("atRiskOffline")) : null),
    el("td", {}, item.technician ? technicianButton(item.technician) : "–"),
  ];
}

function renderRisk() {
  const { at_risk } = state.snapshot;
  const rows = at_risk.map((item) => ({
    item,
    element: el("tr", { "data-ticket": item.due.ticket_id, "data-rule": item.due.rule }, riskCells(item)),
  }));
  const shown = fillTable("risk", rows, t("noRisk"));
  tableNote("risk", shown, at_risk.length, state.snapshot.at_risk_left_off);
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
    el("th", { scope: "row" }, ticketLink(item.ticket_id, item.serial_number)),
    el("td", {}, t("facts")[item.fact] ?? item.fact,
      el("div", { class: "muted small" }, userName(item.recorded_by), " · ", el("span", { class: "mono" }, item.device))),
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
  const { review_queue } = state.snapshot;
  const rows = review_queue.map((item) => ({
    item,
    element: el("tr", { "data-mutation": item.mutation_id }, reviewCells(item)),
  }));
  const shown = fillTable("review", rows, t("noReview"));
  const refocus = focusedId ? document.getElementById(focusedId) : null;
  if (refocus) {
    refocus.focus();
    if (selection && refocus.setSelectionRange) refocus.setSelectionRange(...selection);
  }
  tableNote("review", shown, review_queue.length, state.snapshot.review_left_off);
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
  const heading = document.getElementById("detail-heading");
  heading.textContent = t("detailHeading", displayName(user));
  heading.title = user;
  const devices = crew.filter((row) => row.user === user).map((row) => [
    el("span", { class: "mono" }, row.device_id), " ",
    isOnline(row) ? badge("ok", t("online")) : badge("muted", t("offline", formatAgo(row.last_contact_at))), " ",
    row.outbox_depth > 0 ? badge("warn", t("pending", row.outbox_depth)) : badge("ok", t("inSync")),
    el("span", { class: "muted small" }, ` ${t("colOffset")} ${formatOffset(row.clock_offset_ms)} · ${row.app_version}`),
  ]);
  const risks = at_risk.filter((item) => item.technician === user).map((item) => [
    ticketLink(item.due.ticket_id, item.due.serial_number), " ",
    `${dutyText(item.due)} · ${formatDue(item.due.due_at)} `,
    item.due.state === "overdue" ? badge("alert", t("overdue")) : badge("warn", t("dueSoon")),
  ]);
  const reviews = review_queue.filter((item) => item.recorded_by === user).map((item) => [
    ticketLink(item.ticket_id, item.serial_number), " ",
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

/// Reads the estate's people for their display names. Until a server has
/// the endpoint (404), or while it fails, the page shows user ids.
function loadPeople() {
  if (state.peopleReading) return state.peopleReading;
  state.peopleAskedAt = Date.now();
  const asker = state.session?.user;
  state.peopleReading = (async () => {
    try {
      const answer = await api(API.people);
      // Someone else may have logged in meanwhile, perhaps in another estate.
      if (state.session?.user !== asker) return;
      const people = Array.isArray(answer?.people) ? answer.people : [];
      state.people = new Map(people.map((person) => [person.user, person]));
      if (state.snapshot) render();
    } catch (error) {
      // A refused session is the snapshot's to act on; a missing endpoint is
      // expected of an older server.
      if (error.status !== 401 && error.status !== 404) console.warn("people:", error);
    } finally {
      state.peopleReading = null;
    }
  })();
  return state.peopleReading;
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
  state.people = new Map();
  state.peopleAskedAt = null;
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
  // Beside the snapshot, not before it: names come when they come.
  loadPeople();
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
  for (const name of Object.keys(state.tables)) {
    // A browser may bring back what was typed in a filter before a reload.
    const filter = document.getElementById(`${name}-filter`);
    state.tables[name].filter = filter.value;
    filter.addEventListener("input", (event) => {
      state.tables[name].filter = event.target.value;
      renderTable(name);
    });
    document.querySelector(`#${name}-table thead`).addEventListener("click", (event) => {
      const header = event.target.closest("th[data-sort]");
      if (header) sortBy(name, header.dataset.sort);
    });
  }
  const attention = document.getElementById("crew-attention");
  state.tables.crew.attentionOnly = attention.checked;
  attention.addEventListener("change", (event) => {
    state.tables.crew.attentionOnly = event.target.checked;
    renderTable("crew");
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
