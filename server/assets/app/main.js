// The technicians' app: the screens. Everything shown comes from the phone's
// own store (db.js), so that each screen works with no network at all;
// sync.js brings the store and the server together when there is one.

import * as store from "./db.js";
import { LoginNeeded, Refused, Syncer, logIn } from "./sync.js";
import { LANGUAGES, currentLanguage, setLanguage, span, t } from "./i18n.js";
import { recordHash, sha256Hex } from "./record-hash.js";
import SignaturePad from "./signature_pad.js";

/// Sync every minute while online.
const SYNC_EVERY_MS = 60000;
/// After a sync that could not reach the server, try again sooner: from
/// this delay, doubling up to the minute.
const RETRY_FIRST_MS = 3000;
/// Countdowns are redrawn this often.
const TICK_MS = 30000;
/// A camera picture is scaled to fit this many pixels and stored as JPEG,
/// well under the server's 1 MiB per image.
const PHOTO_MAX_PIXELS = 1600;
const PHOTO_QUALITY = 0.8;
/// How long the phone may look for its position on arrival.
const POSITION_TIMEOUT_MS = 8000;
/// A fee is at most this many yuan (the server's bound, MAX_FEE_FEN).
const MAX_FEE_YUAN = 1000000;

const state = {
  db: null,
  session: null,
  retry: null,
  reachable: true,
  /// Object URLs of the images shown, by hash.
  imageUrls: new Map(),
  retryDelayMs: RETRY_FIRST_MS,
  syncer: null,
  syncing: false,
  message: null,
  /// Milliseconds from tap to durable, for each fact recorded (newest last,
  /// at most 1000), read by the benchmark.
  recordTimings: [],
};

const view = document.getElementById("view");

main().catch((error) => show(element("p", { class: "error" }, String(error))));

async function main() {
  setLanguage(currentLanguage());
  buildChrome();
  if (!window.isSecureContext) showBanner(t("insecure"));
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app" }).catch(() => {});
  }
  if (navigator.storage && navigator.storage.persist) navigator.storage.persist().catch(() => {});
  state.db = await store.open();
  state.syncer = new Syncer(state.db, (change) => {
    // A sync starting or ending changes the status bar only; what it
    // brings (a page, answers) redraws the screen.
    if ("syncing" in change) {
      state.syncing = change.syncing;
      renderStatus();
    } else {
      render();
    }
  });
  window.addEventListener("hashchange", render);
  window.addEventListener("online", () => syncNow());
  window.addEventListener("offline", () => {
    state.reachable = false;
    render();
  });
  setInterval(() => navigator.onLine && syncNow(), SYNC_EVERY_MS);
  setInterval(render, TICK_MS);
  await render();
  window.appReady = true;
  if (navigator.onLine) syncNow();
}

async function syncNow() {
  const session = await store.meta(state.db, "session");
  if (!session || session.expired) return render();
  const result = await state.syncer.sync();
  clearTimeout(state.retry);
  state.reachable = result.ok || !(result.error instanceof TypeError);
  if (result.ok) {
    state.message = null;
    state.retryDelayMs = RETRY_FIRST_MS;
  } else if (result.error instanceof TypeError) {
    // No connection (a basement, or the server restarting): soon again.
    state.retry = setTimeout(syncNow, state.retryDelayMs);
    state.retryDelayMs = Math.min(state.retryDelayMs * 2, SYNC_EVERY_MS);
  } else if (!(result.error instanceof LoginNeeded)) {
    state.message = errorText(result.error);
  }
  await render();
}

// ---- The frame: title, language, status bar --------------------------------

function buildChrome() {
  const language = document.getElementById("language");
  for (const code of LANGUAGES) {
    language.append(element("option", { value: code }, code === "en" ? "English" : "中文"));
  }
  language.value = currentLanguage();
  language.addEventListener("change", () => {
    setLanguage(language.value);
    render();
  });
  document.getElementById("sync").addEventListener("click", () => syncNow());
  document.getElementById("inbox-button").addEventListener("click", () => {
    location.hash = "#/inbox";
  });
}

async function renderStatus() {
  // Online means the server answered the last time it was asked.
  const online = navigator.onLine && state.reachable;
  const summary = await store.outboxSummary(state.db);
  const lastSync = await store.meta(state.db, "last_sync_ms");
  const answers = await store.outcomes(state.db);
  const unread = answers.filter((answer) => answer.attention && !answer.read).length;
  setText("app-title", t("appTitle"));
  setText("language-label", t("language"));
  const net = document.getElementById("net");
  net.textContent = online ? t("online") : t("offline");
  net.className = online ? "online" : "offline";
  setText("waiting", t("waiting", summary.depth));
  setText("oldest", summary.oldestAgeMs === null ? "" : t("oldestWaiting", span(summary.oldestAgeMs)));
  setText("last-sync", lastSync ? t("lastSync", clock(new Date(lastSync).toISOString())) : t("neverSynced"));
  const sync = document.getElementById("sync");
  sync.textContent = state.syncing ? t("syncing") : t("syncNow");
  sync.disabled = state.syncing;
  const inbox = document.getElementById("inbox-button");
  // The answers are always one tap away; the ones to check stand out.
  inbox.textContent = unread > 0 ? t("inbox", unread) : t("answers");
  inbox.className = unread > 0 ? "attention" : "";
  inbox.hidden = answers.length === 0;
  const message = document.getElementById("message");
  message.textContent = state.message || "";
  message.hidden = !state.message;
}

// ---- Screens ----------------------------------------------------------------

let rendering = Promise.resolve();

/// Draw the screen the address names; one drawing at a time.
function render() {
  rendering = rendering.then(draw, draw);
  return rendering;
}

async function draw() {
  await renderStatus();
  const session = await store.meta(state.db, "session");
  state.session = session;
  document.getElementById("status").hidden = !session;
  // A form being filled in is never redrawn under the technician's thumb.
  const sameScreen = view.dataset.route === location.hash;
  const typing = view.contains(document.activeElement) && document.activeElement.matches("input, textarea, select");
  if (sameScreen && (view.dataset.keep === "yes" || typing)) return;
  if (!session || session.expired) return showLogin(session);
  const route = location.hash.replace(/^#\/?/, "").split("/");
  if (route[0] === "t" && route[1]) {
    const id = decodeURIComponent(route[1]);
    if (route[2] === "complete") return showComplete(id);
    if (route[2] === "sign") return showSign(id);
    return showDetail(id, session);
  }
  if (route[0] === "inbox") return showInbox();
  return showList(session);
}

function show(...children) {
  view.dataset.route = location.hash;
  view.dataset.keep = "no";
  view.replaceChildren(...children);
}

/// Keep this screen while the technician fills it in.
function keep() {
  view.dataset.keep = "yes";
}

function showLogin(session) {
  const expired = session && session.expired;
  const error = element("p", { class: "error", id: "login-error", role: "alert" });
  const username = element("input", { name: "username", autocomplete: "username", required: "" });
  if (expired) username.value = session.user;
  const password = element("input", {
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: "",
  });
  const form = element(
    "form",
    { id: "login-form" },
    element("h1", {}, t("loginHeading")),
    element("p", { class: "hint" }, expired ? t("sessionExpired") : t("loginHint")),
    element("label", {}, t("username"), username),
    element("label", {}, t("password"), password),
    element("button", { type: "submit", class: "primary" }, t("logIn")),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const name = username.value.trim();
    const waiting = await store.outboxSummary(state.db);
    if (session && session.user !== name) {
      if (waiting.depth > 0) {
        error.textContent = t("otherUserWaiting", session.display_name || session.user);
        return;
      }
      await store.startAfresh(state.db);
    }
    try {
      await logIn(state.db, name, password.value);
    } catch (failure) {
      error.textContent =
        failure instanceof Refused && failure.status === 401
          ? t("wrongPassword")
          : failure instanceof Refused && failure.code === "not_technician"
            ? t("notTechnician")
            : failure instanceof Refused
              ? errorText(failure)
              : t("unreachable");
      return;
    }
    view.dataset.keep = "no";
    location.hash = "#/";
    await render();
    syncNow();
  });
  show(form);
  keep();
}

async function showList(session) {
  const entries = await store.tickets(state.db);
  const waiting = await store.outbox(state.db);
  const due = (await store.meta(state.db, "due")) || { items: [] };
  const now = Date.now();
  const rows = entries
    .map((entry) => ({ entry, urgency: urgency(entry.ticket, due.items, waiting, now) }))
    .sort((a, b) => a.urgency.sortKey - b.urgency.sortKey || a.entry.id.localeCompare(b.entry.id));
  const list = element("ul", { id: "ticket-list", class: "tickets" });
  for (const { entry, urgency: due } of rows) {
    const ticket = entry.ticket;
    const pending = waiting.filter((mutation) => mutation.ticket_id === ticket.id).length;
    const item = element(
      "li",
      { "data-ticket": ticket.id, class: due.overdue ? "ticket overdue" : "ticket" },
      element(
        "a",
        { href: `#/t/${encodeURIComponent(ticket.id)}`, class: "open" },
        element(
          "div",
          { class: "row" },
          element("strong", {}, ticket.serial_number || t(`kindName.${ticket.kind}`)),
          element("span", { class: "state" }, t(`statusName.${ticket.status}`)),
        ),
        element("div", { class: "location" }, ticket.location),
        element("div", { class: "description" }, ticket.description),
        due.text ? element("div", { class: due.overdue ? "due overdue" : "due" }, due.text) : null,
        ticket.appointment
          ? element("div", { class: "appointment" }, t("appointment", clock(ticket.appointment.at)))
          : null,
      ),
      element(
        "div",
        { class: "row" },
        element("span", {}, ticket.reporter.name),
        phoneLink(ticket.reporter.phone),
        pending ? element("span", { class: "badge" }, t("pendingBadge", pending)) : null,
        entry.revoked ? element("span", { class: "badge revoked" }, t("revokedBadge")) : null,
      ),
    );
    list.append(item);
  }
  show(
    element("h1", {}, t("myTickets"), element("small", {}, ` · ${session.display_name}`)),
    rows.length ? list : element("p", { class: "empty" }, t("noTickets")),
    element("button", { id: "log-out", class: "quiet" }, t("logOut")),
  );
  // When the list first showed after the page was opened (the benchmark
  // reads it).
  if (performance.getEntriesByName("ticket-list-shown").length === 0) {
    performance.mark("ticket-list-shown", { detail: { tickets: rows.length } });
  }
  document.getElementById("log-out").addEventListener("click", async () => {
    const stored = await store.meta(state.db, "session");
    await store.setMeta(state.db, "session", { ...stored, expired: true });
    render();
  });
}

/// What is due first on a ticket: its R-P1/R-P2 arrival until the
/// technician has arrived (here or on the server), then its R-K2 finish.
function urgency(ticket, dueItems, waiting, now) {
  const arrivedHere = waiting.some(
    (entry) => entry.ticket_id === ticket.id && entry.mutation.op.type === "record_arrival",
  );
  const arrived = arrivedHere || Object.keys(ticket.arrivals || {}).length > 0;
  const items = dueItems
    .filter((item) => item.ticket_id === ticket.id)
    .filter((item) => !(arrived && item.duty === "arrival"))
    .sort((a, b) => Date.parse(a.due_at) - Date.parse(b.due_at));
  const first = items[0];
  if (first) {
    const left = Date.parse(first.due_at) - now;
    const rule = t(`rule.${first.rule}`);
    const when = left >= 0 ? t("dueIn", span(left)) : t("overdueBy", span(left));
    return { sortKey: Date.parse(first.due_at), overdue: left < 0, text: `${rule} · ${when}` };
  }
  const fallback = ticket.appointment ? ticket.appointment.at : ticket.dispatched_at || ticket.received_at;
  return { sortKey: Date.parse(fallback) + 1e13, overdue: false, text: "" };
}

/// The phone's copy of ticket `id`; when it has none (taken back and
/// dropped), the list instead.
async function ticketOrHome(id) {
  const entry = await store.ticket(state.db, id);
  if (!entry) location.hash = "#/";
  return entry;
}

async function showDetail(id, session) {
  const entry = await ticketOrHome(id);
  if (!entry) return;
  const ticket = entry.ticket;
  const pending = await store.pendingOf(state.db, id);
  const positionBox = element("input", { type: "checkbox", id: "with-position" });
  positionBox.checked = true;
  const noteText = element("textarea", { id: "note-text", rows: "3", placeholder: t("notePlaceholder") });
  noteText.addEventListener("input", keep);
  const stage = element(
    "select",
    { id: "photo-stage" },
    element("option", { value: "before" }, t("before")),
    element("option", { value: "after" }, t("after")),
  );
  const photoInput = element("input", {
    id: "photo-input",
    type: "file",
    accept: "image/*",
    capture: "environment",
  });
  const actions = element(
    "section",
    { class: "actions" },
    element(
      "div",
      { class: "row" },
      element("button", { id: "arrive", class: "primary" }, t("arrive")),
      element("label", { class: "inline" }, positionBox, t("withPosition")),
    ),
    element("label", {}, t("note"), noteText),
    element("button", { id: "save-note" }, t("save")),
    element("div", { class: "row" }, element("span", {}, t("photos")), stage, photoInput),
    element(
      "div",
      { class: "row" },
      element("a", { class: "button", id: "go-complete", href: `#/t/${encodeURIComponent(id)}/complete` }, t("complete")),
      element("a", { class: "button", id: "go-sign", href: `#/t/${encodeURIComponent(id)}/sign` }, t("signature")),
    ),
    element("p", { id: "recorded", class: "hint", role: "status" }),
  );
  show(
    element("a", { href: "#/", class: "back" }, t("back")),
    element("h1", {}, ticket.serial_number || t(`kindName.${ticket.kind}`)),
    entry.revoked ? element("p", { class: "badge revoked" }, t("revokedBadge")) : null,
    definitions([
      [t("status"), t(`statusName.${ticket.status}`)],
      [t("location"), ticket.location],
      [t("description"), ticket.description],
      [t("reporter"), element("span", {}, ticket.reporter.name, " ", phoneLink(ticket.reporter.phone))],
      ticket.appointment ? [t("appointment", ""), clock(ticket.appointment.at)] : null,
    ]),
    actions,
    await photoStrip(ticket, pending),
    element("h2", {}, t("history")),
    historyList(ticket, pending, session),
  );
  const recorded = document.getElementById("recorded");
  document.getElementById("arrive").addEventListener("click", async () => {
    const started = performance.now();
    const op = { type: "record_arrival" };
    if (positionBox.checked && navigator.geolocation) {
      recorded.textContent = t("positionAsked");
      const position = await currentPosition();
      if (position) op.position = position;
      else recorded.textContent = t("positionFailed");
    }
    await recordFact(ticket, op, [], started);
  });
  document.getElementById("save-note").addEventListener("click", async () => {
    const text = noteText.value.trim();
    if (!text) return;
    await recordFact(ticket, { type: "add_note", text }, []);
  });
  photoInput.addEventListener("change", async () => {
    const file = photoInput.files && photoInput.files[0];
    if (!file) return;
    const started = performance.now();
    const bytes = await scaledPhoto(file);
    const hash = await sha256Hex(bytes);
    const image = { hash, type: "image/jpeg", bytes };
    await recordFact(ticket, { type: "attach_photo", blob: hash, stage: stage.value }, [image], started);
  });
}

/// Store one fact on the phone; the screen says so once it is durable.
async function recordFact(ticket, op, images, started = performance.now()) {
  const mutation = await store.record(state.db, ticket, op, images);
  const elapsed = performance.now() - started;
  state.recordTimings.push(elapsed);
  if (state.recordTimings.length > 1000) state.recordTimings.shift();
  view.dataset.keep = "no";
  await render();
  const recorded = document.getElementById("recorded");
  if (recorded) recorded.textContent = `${t(`kind.${op.type}`)} · ${t("recorded")} (#${mutation.seq})`;
  if (navigator.onLine) syncNow();
  return mutation;
}

async function showComplete(id) {
  const entry = await ticketOrHome(id);
  if (!entry) return;
  const workDone = element("textarea", { id: "work-done", rows: "4", required: "" });
  const materials = element("div", { id: "materials" });
  const addMaterial = () =>
    materials.append(
      element(
        "div",
        { class: "row material" },
        element("input", { class: "material-name", placeholder: t("materialName") }),
        element("input", { class: "material-quantity", placeholder: t("quantity"), size: "4" }),
      ),
    );
  addMaterial();
  const paid = element("input", { type: "radio", name: "charge", value: "paid", id: "charge-paid" });
  const free = element("input", { type: "radio", name: "charge", value: "free", id: "charge-free" });
  free.checked = true;
  const fee = element("input", { id: "fee-yuan", type: "number", min: "0", step: "0.01", inputmode: "decimal" });
  const error = element("p", { class: "error", role: "alert" });
  const form = element(
    "form",
    { id: "complete-form" },
    element("a", { href: `#/t/${encodeURIComponent(id)}`, class: "back" }, t("back")),
    element("h1", {}, t("complete")),
    element("label", {}, t("workDone"), workDone),
    element("fieldset", {}, element("legend", {}, t("materials")), materials),
    element("button", { type: "button", id: "add-material" }, t("addMaterial")),
    element(
      "fieldset",
      {},
      element("legend", {}, t("charge")),
      element("label", { class: "inline" }, paid, t("paid")),
      element("label", { class: "inline" }, free, t("free")),
      element("label", {}, t("feeYuan"), fee),
    ),
    element("button", { type: "submit", class: "primary", id: "save-complete" }, t("save")),
    error,
  );
  form.querySelector("#add-material").addEventListener("click", addMaterial);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const started = performance.now();
    const result = {
      work_done: workDone.value,
      materials: [...materials.querySelectorAll(".material")]
        .map((row) => ({
          name: row.querySelector(".material-name").value.trim(),
          quantity: row.querySelector(".material-quantity").value.trim(),
        }))
        .filter((material) => material.name),
      charge: { type: "free" },
    };
    if (!result.work_done.trim()) {
      error.textContent = t("workDone");
      return;
    }
    if (paid.checked) {
      const yuan = Number(fee.value || "0");
      if (!(yuan >= 0 && yuan <= MAX_FEE_YUAN)) {
        error.textContent = t("feeYuan");
        return;
      }
      result.charge = { type: "paid", fee_fen: Math.round(yuan * 100) };
    }
    await recordFact(entry.ticket, { type: "complete", result }, [], started);
    view.dataset.keep = "no";
    location.hash = `#/t/${encodeURIComponent(id)}/sign`;
  });
  show(form);
  keep();
}

/// The completion record the owner signs: the newest one recorded on this
/// phone and not yet answered, else the server's current result.
function recordToSign(ticket, pending) {
  const mine = pending.filter((entry) => entry.mutation.op.type === "complete");
  if (mine.length) return mine[mine.length - 1].mutation.op.result;
  const current = ticket.current_result && ticket.results ? ticket.results[ticket.current_result] : null;
  return current ? current.body : null;
}

async function showSign(id) {
  const entry = await ticketOrHome(id);
  if (!entry) return;
  const ticket = entry.ticket;
  const record = recordToSign(ticket, await store.pendingOf(state.db, id));
  const back = element("a", { href: `#/t/${encodeURIComponent(id)}`, class: "back" }, t("back"));
  if (!record) {
    show(back, element("p", { class: "error" }, t("needResult")));
    return;
  }
  const hash = await recordHash(record);
  const signer = element("input", { id: "signer-name", value: ticket.reporter.name });
  const rating = element(
    "select",
    { id: "rating" },
    ...["satisfied", "basically_satisfied", "dissatisfied"].map((value) => element("option", { value }, t(value))),
  );
  const canvas = element("canvas", { id: "signature-pad", "aria-label": t("signHere") });
  const error = element("p", { class: "error", role: "alert" });
  show(
    back,
    element("h1", {}, t("signature")),
    element(
      "section",
      { id: "signed-summary", class: "summary", "data-record-hash": hash },
      element("h2", {}, t("summary")),
      element("p", { class: "work-done" }, record.work_done),
      record.materials.length
        ? element("ul", {}, ...record.materials.map((m) => element("li", {}, `${m.name} × ${m.quantity}`)))
        : null,
      element(
        "p",
        {},
        record.charge.type === "paid" ? t("fee", (record.charge.fee_fen / 100).toFixed(2)) : t("freeOfCharge"),
      ),
      element("p", { class: "hash" }, hash.slice(0, 16)),
    ),
    element("label", {}, t("signerName"), signer),
    element("label", {}, t("rating"), rating),
    element("p", { class: "hint" }, t("signHere")),
    canvas,
    element(
      "div",
      { class: "row" },
      element("button", { id: "clear-signature", type: "button" }, t("clear")),
      element("button", { id: "confirm-signature", class: "primary", type: "button" }, t("confirmSignature")),
    ),
    error,
  );
  keep();
  const ratio = Math.max(window.devicePixelRatio || 1, 1);
  canvas.width = canvas.offsetWidth * ratio;
  canvas.height = canvas.offsetHeight * ratio;
  canvas.getContext("2d").scale(ratio, ratio);
  const pad = new SignaturePad(canvas, { backgroundColor: "rgb(255,255,255)" });
  document.getElementById("clear-signature").addEventListener("click", () => pad.clear());
  document.getElementById("confirm-signature").addEventListener("click", async () => {
    if (pad.isEmpty() || !signer.value.trim()) {
      error.textContent = pad.isEmpty() ? t("needInk") : t("signerName");
      return;
    }
    const started = performance.now();
    const png = new Uint8Array(await (await canvasBlob(canvas, "image/png")).arrayBuffer());
    const strokes = new TextEncoder().encode(JSON.stringify(strokeData(pad, canvas)));
    const image = { hash: await sha256Hex(png), type: "image/png", bytes: png };
    const drawn = { hash: await sha256Hex(strokes), type: "application/json", bytes: strokes };
    const op = {
      type: "attach_signature",
      blob: image.hash,
      signed_record: hash,
      signer_name: signer.value.trim(),
      rating: rating.value,
      strokes: drawn.hash,
    };
    view.dataset.keep = "no";
    location.hash = `#/t/${encodeURIComponent(id)}`;
    await recordFact(ticket, op, [image, drawn], started);
  });
}

/// The strokes as drawn, in CSS pixels of the canvas, with milliseconds
/// from the first touch: `{width, height, strokes: [[[x, y, t], …], …]}`.
function strokeData(pad, canvas) {
  const groups = pad.toData();
  const start = groups.length && groups[0].points.length ? groups[0].points[0].time : 0;
  return {
    width: canvas.offsetWidth,
    height: canvas.offsetHeight,
    strokes: groups.map((group) =>
      group.points.map((point) => [Math.round(point.x), Math.round(point.y), point.time - start]),
    ),
  };
}

/// Answers that need attention (late, refused) to acknowledge, then every
/// answer the phone keeps, newest first.
async function showInbox() {
  const answers = (await store.outcomes(state.db)).reverse();
  const attention = element("ul", { id: "inbox", class: "answers" });
  const all = element("ul", { id: "answers", class: "answers" });
  for (const answer of answers) {
    const line = () => [
      element("strong", {}, `${t(`kind.${answer.op}`)} · ${answer.ticket_id} · #${answer.seq}`),
      element("div", {}, outcomeText(answer.outcome)),
    ];
    all.append(element("li", { "data-seq": String(answer.seq) }, ...line()));
    if (!answer.attention) continue;
    const item = element("li", { "data-seq": String(answer.seq), class: answer.read ? "read" : "" }, ...line());
    if (!answer.read) {
      const ok = element("button", { class: "quiet" }, t("markRead"));
      ok.addEventListener("click", async () => {
        await store.markRead(state.db, answer.seq);
        render();
      });
      item.append(ok);
    }
    attention.append(item);
  }
  show(
    element("a", { href: "#/", class: "back" }, t("back")),
    element("h1", {}, t("inboxHeading")),
    attention.childElementCount ? attention : element("p", { class: "empty" }, t("inboxEmpty")),
    element("h2", {}, t("answers")),
    all,
  );
}

// ---- Pieces ----------------------------------------------------------------

/// What an answer said, in the page's language.
function outcomeText(outcome) {
  if (outcome.outcome === "duplicate") return `${t("outcome.duplicate")}: ${outcomeText(outcome.first)}`;
  if (outcome.outcome === "rejected") {
    return `${t("outcome.rejected")}: ${t(`reject.${outcome.code}`)}`;
  }
  if (outcome.late) {
    const reason = t(`lateReason.${outcome.late.reason}`);
    const now = outcome.late.assigned_now ? ` · ${t("reassignedTo", outcome.late.assigned_now)}` : "";
    return `${t("outcome.late")}: ${reason}${now}`;
  }
  return t("outcome.applied");
}

function historyList(ticket, pending, session) {
  const list = element("ol", { id: "history", class: "history" });
  for (const entry of [...pending].reverse()) {
    list.append(
      element(
        "li",
        { class: "pending", "data-seq": String(entry.seq) },
        element("span", { class: "when" }, clock(entry.mutation.recorded_at)),
        ` ${t(`kind.${entry.mutation.op.type}`)} · ${t("pendingUpload")}`,
      ),
    );
  }
  for (const entry of [...ticket.history].reverse()) {
    const event = entry.event;
    let text = t(`event.${event.type}`);
    if (event.type === "fact_recorded") text = `${t(`kind.${factOp(event.fact)}`)}${event.late ? ` · ${t("outcome.late")}` : ""}`;
    list.append(
      element(
        "li",
        {},
        element("span", { class: "when" }, clock(entry.at)),
        ` ${text} · ${actorName(entry.actor, session)}`,
      ),
    );
  }
  return list;
}

function factOp(fact) {
  return {
    arrival: "record_arrival",
    note: "add_note",
    result: "complete",
    signature: "attach_signature",
    photo: "attach_photo",
  }[fact];
}

/// People by name: "me" for this technician, the office and the system by
/// their part (this app has no directory of the estate's staff).
function actorName(actor, session) {
  if (actor.type === "scheduler") return t("actor.scheduler");
  if (actor.type === "device") return actor.user === session.user ? t("actor.me") : t("actor.device");
  return actor.user === session.user ? t("actor.me") : t("actor.office");
}

/// Thumbnails of the photos this phone holds for the ticket.
async function photoStrip(ticket, pending) {
  const hashes = new Set(Object.values(ticket.photos || {}).map((fact) => fact.body.blob));
  for (const entry of pending) if (entry.mutation.op.type === "attach_photo") hashes.add(entry.mutation.op.blob);
  const strip = element("div", { class: "photos", id: "photos" });
  for (const hash of hashes) {
    let url = state.imageUrls.get(hash);
    if (!url) {
      const local = await store.blob(state.db, hash);
      if (!local) continue;
      // One URL per image for the page's life: redrawing makes none anew.
      url = URL.createObjectURL(new Blob([local.bytes], { type: local.type }));
      state.imageUrls.set(hash, url);
    }
    strip.append(element("img", { src: url, alt: t("photos"), "data-blob": hash }));
  }
  return strip.childElementCount ? strip : null;
}

function currentPosition() {
  return new Promise((resolve) => {
    navigator.geolocation.getCurrentPosition(
      (found) =>
        resolve({
          latitude_e6: Math.round(found.coords.latitude * 1e6),
          longitude_e6: Math.round(found.coords.longitude * 1e6),
          accuracy_m: Math.max(0, Math.round(found.coords.accuracy)),
        }),
      () => resolve(null),
      { enableHighAccuracy: true, timeout: POSITION_TIMEOUT_MS, maximumAge: 60000 },
    );
  });
}

/// A camera picture scaled to fit PHOTO_MAX_PIXELS, as JPEG bytes.
async function scaledPhoto(file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, PHOTO_MAX_PIXELS / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return new Uint8Array(await (await canvasBlob(canvas, "image/jpeg", PHOTO_QUALITY)).arrayBuffer());
}

function canvasBlob(canvas, type, quality) {
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("no image"))), type, quality),
  );
}

function phoneLink(phone) {
  if (!phone) return null;
  return element("a", { href: `tel:${phone.replace(/[^0-9+]/g, "")}`, class: "phone" }, phone);
}

function definitions(pairs) {
  const list = element("dl", { class: "facts" });
  for (const pair of pairs) {
    if (!pair) continue;
    list.append(element("dt", {}, pair[0]), element("dd", {}, pair[1]));
  }
  return list;
}

/// A time in the estate's zone, whatever zone the phone is set to.
function clock(iso) {
  const session = state.session || {};
  return new Date(iso).toLocaleString(currentLanguage() === "en" ? "en-GB" : "zh-CN", {
    timeZone: session.time_zone || undefined,
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  });
}

function errorText(error) {
  if (error instanceof Refused) {
    const known = t(`code.${error.code}`);
    return known === `code.${error.code}` ? `${t("unreachable")} (${error.code})` : known;
  }
  return t("unreachable");
}

function showBanner(text) {
  const banner = document.getElementById("banner");
  banner.textContent = text;
  banner.hidden = false;
}

function setText(id, text) {
  const node = document.getElementById(id);
  if (node) node.textContent = text;
}

/// A DOM element; text children are text nodes, never parsed as HTML.
function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

window.appState = state;
