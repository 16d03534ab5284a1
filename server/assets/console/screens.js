// The console's screens besides the ticket detail: intake, the ticket list,
// the dispatch queue, the due list, follow-ups, reports and users.

import {
  API, ApiError, api, blobUrl, currentSession, estateInstant, estateToday, formatTime, nameOf, newRequestKey,
  technicians, yuan, zoneName,
} from "./api.js";
import { el, field, select, table } from "./dom.js";
import { errorText, label, labels, problemText, t } from "./i18n.js";
import { failure, go, permissions } from "./main.js";

function options(group, withAll) {
  const pairs = Object.entries(labels(group));
  return withAll ? [["", t("all")], ...pairs] : pairs;
}

function ticketLink(item) {
  const id = item.ticket_id ?? item.id;
  return el("a", { href: `#/tickets/${encodeURIComponent(id)}`, class: "mono" }, item.serial_number ?? id);
}

function responsibleName(responsible) {
  if (!responsible) return "";
  return responsible.user ? nameOf(responsible.user) : label("role", responsible.role);
}

function zoneNote() {
  return el("p", { class: "hint" }, t("timesIn", zoneName()));
}

// ---- Intake (受理, R-I1/R-I2, R-S2) --------------------------------------

/// R-K1..R-K3 as the console suggests them for a category; the server
/// refuses a kind the rules do not allow.
const SUGGESTED_KIND = {
  repair: "work_order",
  rework: "work_order",
  environment: "verbal_dispatch",
  security: "verbal_dispatch",
  owner_communication: "coordination_ticket",
  home_service: "work_order",
  private_garden: "work_order",
};
const BOOKED = ["home_service", "private_garden"];

export async function intakeScreen(followUpOf) {
  const input = (id, extra = {}) => el("input", { id, name: id, ...extra });
  const reporterName = input("reporter-name", { autocomplete: "off" });
  const reporterPhone = input("reporter-phone", { inputmode: "tel", autocomplete: "off" });
  const unit = input("unit", { autocomplete: "off", placeholder: t("unitHint") });
  const unitOptions = el("ul", { class: "unit-options", hidden: true });
  const category = select("category", [["", "—"], ...options("category")], "");
  const kind = select("kind", [["", "—"], ...options("kind")], "");
  const kindHint = el("span", { class: "hint", id: "kind-hint" });
  const area = select("area", options("area"), "private_unit");
  const source = select("source", options("source"), followUpOf ? "follow_up" : "phone");
  const description = el("textarea", { id: "description", name: "description" });
  const followUp = input("follow-up-of", { value: followUpOf ?? "" });
  const serviceDate = input("service-date", { type: "date" });
  const agreedFrom = input("agreed-from", { type: "time", value: "09:00" });
  const agreedUntil = input("agreed-until", { type: "time", value: "11:00" });
  const fee = input("fee", { type: "number", min: "0", step: "0.01", value: "0" });
  const staff = select("staff", [["", "—"], ...technicians().map((p) => [p.user, p.display_name])], "");
  const booking = el(
    "fieldset",
    { class: "field wide", hidden: true, dataset: { field: "booking" } },
    el("legend", {}, t("booking")),
    el(
      "div",
      { class: "form-grid" },
      field(t("serviceDate"), serviceDate, "booking.service_date"),
      field(t("agreedFrom"), agreedFrom, "booking.agreed_time"),
      field(t("agreedUntil"), agreedUntil),
      field(t("fee"), fee, "booking.fee"),
      field(t("staff"), staff, "booking.staff"),
    ),
    el("p", { class: "field-problem", role: "alert", hidden: true }),
  );
  const outcome = el("div", { id: "intake-outcome" });
  const submit = el("button", { type: "submit", class: "button-primary", id: "record-report" }, t("recordReport"));
  let fields = null;
  let kindChosen = false;
  // One key per record, and the time it was received (R-I2): every retry
  // of the record sends the same request.
  let key = newRequestKey();
  let receivedAt = null;

  const showBooking = () => {
    booking.hidden = !(BOOKED.includes(category.value) && kind.value === "work_order");
  };
  category.addEventListener("change", () => {
    const suggested = SUGGESTED_KIND[category.value];
    kindHint.textContent = suggested ? t("kindSuggested", label("kind", suggested)) : "";
    if (suggested && !kindChosen) kind.value = suggested;
    showBooking();
  });
  kind.addEventListener("change", () => {
    kindChosen = true;
    showBooking();
  });
  let unitTimer = null;
  unit.addEventListener("input", () => {
    clearTimeout(unitTimer);
    unitTimer = setTimeout(() => suggestUnits(unit, unitOptions, { reporterName, reporterPhone, area }), 200);
  });

  const form = el(
    "form",
    { class: "card", id: "intake-form", novalidate: true },
    el("h2", {}, t("intakeHeading")),
    el("p", { class: "form-error", id: "intake-problems", role: "alert", hidden: true }),
    el(
      "fieldset",
      { class: "plain form-grid", id: "intake-fields" },
      field(t("reporterName"), reporterName, "reporter.name"),
      field(t("reporterPhone"), reporterPhone, "reporter.phone"),
      el("div", { class: "field", dataset: { field: "location" } },
        el("label", { for: "unit" }, t("unit")), unit, unitOptions,
        el("p", { class: "field-problem", role: "alert", hidden: true })),
      field(t("area"), area, "area"),
      field(t("category"), category, "category"),
      el("div", { class: "field", dataset: { field: "kind" } },
        el("label", { for: "kind" }, t("kind")), kind, kindHint,
        el("p", { class: "field-problem", role: "alert", hidden: true })),
      field(t("source"), source, "source"),
      followUpOf ? field(t("followUpOf"), followUp, "follow_up_of") : null,
      el("div", { class: "field wide", dataset: { field: "description" } },
        el("label", { for: "description" }, t("description")), description,
        el("p", { class: "field-problem", role: "alert", hidden: true })),
      booking,
    ),
    el("div", { class: "row" }, submit),
    outcome,
  );

  // After an answer that never came, the record may be stored: until it is
  // sent again as it was (same key, nothing doubles), the form is locked.
  let unanswered = null;
  const unlock = () => {
    unanswered = null;
    fields.disabled = false;
    submit.textContent = t("recordReport");
  };
  fields = form.querySelector("#intake-fields");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblems(form);
    outcome.replaceChildren();
    let draft = unanswered;
    if (!draft) {
      receivedAt ??= new Date().toISOString();
      draft = {
        estate: currentSession().estate,
        received_at: receivedAt,
        kind: kind.value || undefined,
        category: category.value || undefined,
        area: area.value,
        source: source.value,
        reporter: reporterName.value.trim() || reporterPhone.value.trim()
          ? { name: reporterName.value.trim() || undefined, phone: reporterPhone.value.trim() || undefined }
          : undefined,
        location: unit.value.trim() || undefined,
        description: description.value.trim() || undefined,
      };
      if (source.value === "follow_up" && followUp.value.trim()) draft.follow_up_of = followUp.value.trim();
      if (!booking.hidden) {
        const from = estateInstant(serviceDate.value, agreedFrom.value);
        const until = estateInstant(serviceDate.value, agreedUntil.value);
        if (!serviceDate.value || !from || !until) {
          showProblems(form, requiredProblem(serviceDate.value ? "booking.agreed_time" : "booking.service_date"));
          return;
        }
        draft.booking = {
          service_date: serviceDate.value,
          agreed_time: { type: "window", from, until },
          fee: Number(fee.value) > 0 ? { type: "paid", fee_fen: Math.round(Number(fee.value) * 100) } : { type: "free" },
          staff: staff.value || undefined,
        };
      }
    }
    submit.disabled = true;
    try {
      // The same key for every retry of this record: it is made once.
      const ticket = await api(API.tickets, { method: "POST", body: draft, key });
      key = newRequestKey();
      receivedAt = null;
      unlock();
      form.reset();
      kindChosen = false;
      kindHint.textContent = "";
      booking.hidden = true;
      outcome.replaceChildren(
        el(
          "p",
          { class: "notice ok", role: "status", id: "intake-recorded" },
          ticket.serial_number ? t("recorded", ticket.serial_number) : t("recordedVerbal"),
          " ",
          el("a", { href: `#/tickets/${encodeURIComponent(ticket.id)}` }, t("openTicket")),
        ),
      );
    } catch (error) {
      if (error.status === 0 || error.status >= 500) {
        unanswered = draft;
        fields.disabled = true;
        submit.textContent = t("retry");
        const giveUp = el("button", { type: "button", onclick: () => { key = newRequestKey(); receivedAt = null; unlock(); outcome.replaceChildren(); } }, t("editAnyway"));
        outcome.replaceChildren(el("p", { class: "notice alert", role: "alert" }, errorText(error), " ", t("mayBeRecorded"), " ", giveUp));
      } else {
        showProblems(form, error);
      }
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/// A field left empty, shown as the server's R-I2 problem would be.
export function requiredProblem(name) {
  return new ApiError(422, "invalid_record", "", { problems: [{ field: name, problem: "is required (必填)" }] });
}

async function suggestUnits(unit, list, { reporterName, reporterPhone, area }) {
  const prefix = unit.value.trim();
  if (!prefix) {
    list.hidden = true;
    return;
  }
  try {
    const answer = await api(`${API.units}?prefix=${encodeURIComponent(prefix)}&limit=8`);
    list.replaceChildren(
      ...answer.units.map((known) =>
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              onclick: () => {
                unit.value = known.location;
                area.value = known.area;
                if (!reporterName.value) reporterName.value = known.reporter.name;
                if (!reporterPhone.value && known.reporter.phone) reporterPhone.value = known.reporter.phone;
                list.hidden = true;
              },
            },
            `${known.location} · ${known.reporter.name}${known.reporter.phone ? " · " + known.reporter.phone : ""}`,
          ),
        ),
      ),
    );
    list.hidden = answer.units.length === 0;
  } catch {
    list.hidden = true;
  }
}

export function clearProblems(form) {
  for (const problem of form.querySelectorAll(".field-problem, .form-error")) problem.hidden = true;
  for (const marked of form.querySelectorAll(".has-problem")) marked.classList.remove("has-problem");
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

let problemIds = 0;

/// Every problem of a refused record at its field (R-I2: all at once);
/// any other refusal at the top of the form.
export function showProblems(form, error) {
  const top = form.querySelector(".form-error");
  const problems = error instanceof ApiError ? error.details?.problems ?? [] : [];
  const unplaced = [];
  for (const problem of problems) {
    const name = problem.field.split(".").length > 2 ? problem.field.split(".").slice(0, 2).join(".") : problem.field;
    const place =
      form.querySelector(`[data-field="${CSS.escape(problem.field)}"]`) ??
      form.querySelector(`[data-field="${CSS.escape(name)}"]`) ??
      form.querySelector(`[data-field="${CSS.escape(problem.field.split(".")[0])}"]`);
    const text = place?.querySelector(":scope > .field-problem");
    if (!text) {
      unplaced.push(problemText(problem.problem));
      continue;
    }
    place.classList.add("has-problem");
    text.textContent = problemText(problem.problem);
    text.hidden = false;
    // Screen readers announce the field as wrong, and why.
    text.id ||= `problem-${++problemIds}`;
    for (const input of place.querySelectorAll("input, select, textarea")) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", text.id);
    }
  }
  if (top) {
    top.textContent = problems.length ? [t("fixProblems"), ...unplaced].join(" · ") : errorText(error);
    top.hidden = false;
  }
}

// ---- Tickets ---------------------------------------------------------------

/// The list's search and filters, kept while the user opens a ticket.
const FRESH_LIST = { q: "", kind: "", status: "open", technician: "", overdue: false, order: "newest", pages: [null] };
const listState = { ...FRESH_LIST, user: null, request: 0 };
const PAGE_SIZE = 50;

export async function ticketsScreen() {
  const mine = permissions().role === "technician";
  // Another login starts from the first page with no filters.
  if (listState.user !== currentSession().user) {
    Object.assign(listState, FRESH_LIST, { pages: [null], user: currentSession().user });
  }
  const q = el("input", { id: "search", type: "search", value: listState.q, placeholder: t("searchHint"), "aria-label": t("search") });
  const kind = select("filter-kind", options("kind", true), listState.kind);
  const statusOptions = [["", t("all")], ...Object.entries(labels("status"))];
  const status = select("filter-status", statusOptions, listState.status);
  const technician = select(
    "filter-technician",
    [["", t("all")], ...technicians().map((p) => [p.user, p.display_name])],
    listState.technician,
    { hidden: mine },
  );
  const overdue = el("input", { id: "filter-overdue", type: "checkbox", checked: listState.overdue });
  const order = select("filter-order", [["newest", t("orderNewest")], ["oldest", t("orderOldest")]], listState.order, {
    "aria-label": t("order"),
  });
  const results = el("div", { id: "ticket-results" });
  const apply = () => {
    Object.assign(listState, {
      q: q.value,
      kind: kind.value,
      status: status.value,
      technician: technician.value,
      overdue: overdue.checked,
      order: order.value,
      pages: [null],
    });
    loadPage(results);
  };
  const filters = el(
    "form",
    { class: "row", id: "ticket-filters", onsubmit: (event) => { event.preventDefault(); apply(); } },
    q,
    el("button", { type: "submit", class: "button-primary" }, t("search")),
    el("label", {}, t("colKind"), " ", kind),
    el("label", {}, t("status"), " ", status),
    mine ? null : el("label", {}, t("technician"), " ", technician),
    el("label", {}, overdue, " ", t("overdueOnly")),
    order,
  );
  for (const control of [kind, status, technician, overdue, order]) control.addEventListener("change", apply);
  loadPage(results);
  return el(
    "section",
    { class: "card" },
    el("div", { class: "card-head" }, el("h2", {}, mine ? t("myTickets") : t("ticketsHeading")), zoneNote()),
    filters,
    results,
  );
}

async function loadPage(results) {
  const parameters = new URLSearchParams({ limit: String(PAGE_SIZE), order: listState.order });
  if (listState.q.trim()) parameters.set("q", listState.q.trim());
  if (listState.kind) parameters.set("kind", listState.kind);
  if (listState.status) parameters.set("status", listState.status);
  if (listState.technician) parameters.set("technician", listState.technician);
  if (listState.overdue) parameters.set("overdue", "true");
  const after = listState.pages[listState.pages.length - 1];
  if (after) parameters.set("after", after);
  results.replaceChildren(el("p", { class: "muted" }, t("loading")));
  // Only the latest request draws: an older answer arriving late is dropped.
  const request = ++listState.request;
  let page;
  try {
    page = await api(`${API.cards}?${parameters}`);
  } catch (error) {
    if (request === listState.request) results.replaceChildren(failure(error));
    return;
  }
  if (request !== listState.request) return;
  const rows = page.cards.map((card) =>
    el(
      "tr",
      { class: card.missed_deadlines && !["closed", "converted", "cancelled"].includes(card.status) ? "overdue" : null },
      el("td", {}, ticketLink(card)),
      el("td", {}, formatTime(card.received_at)),
      el("td", {}, card.location),
      el("td", {}, card.reporter.name, card.reporter.phone ? el("div", { class: "small muted" }, card.reporter.phone) : null),
      el("td", {}, label("kind", card.kind)),
      el("td", {}, label("category", card.category)),
      el(
        "td",
        {},
        label("status", card.status),
        card.missed_deadlines ? [" ", el("span", { class: "badge alert" }, t("missed", card.missed_deadlines))] : null,
        card.escalated ? [" ", el("span", { class: "badge warn" }, t("escalated"))] : null,
      ),
      el("td", {}, nameOf(card.assigned_technician)),
    ),
  );
  const previous = el("button", { type: "button", disabled: listState.pages.length === 1 }, t("previous"));
  previous.addEventListener("click", () => {
    listState.pages.pop();
    loadPage(results);
  });
  const next = el("button", { type: "button", disabled: !page.next_after }, t("more"));
  next.addEventListener("click", () => {
    listState.pages.push(page.next_after);
    loadPage(results);
  });
  const shown = [
    rows.length
      ? table(
          [t("colSerial"), t("colReceived"), t("colUnit"), t("colReporter"), t("colKind"), t("colCategory"), t("colStatus"), t("colTechnician")],
          rows,
          { id: "ticket-table" },
        )
      : el("p", { class: "muted" }, t("empty")),
    // A search stops after so many tickets and says where to go on.
    page.next_after && page.cards.length < PAGE_SIZE ? el("p", { class: "hint", id: "search-goes-on" }, t("searchGoesOn")) : null,
    el("div", { class: "row" }, previous, next),
  ];
  results.replaceChildren(...shown.filter(Boolean));
}

// ---- Dispatch queue (R-D3) -------------------------------------------------

export async function dispatchScreen() {
  const queue = await api(API.dispatchQueue);
  const rows = queue.tickets.map((queued) =>
    el(
      "tr",
      {},
      el("td", {}, ticketLink(queued)),
      el("td", {}, el("span", { class: queued.priority === "owner" ? "badge warn" : "badge" }, label("priority", queued.priority))),
      el("td", {}, formatTime(queued.received_at)),
      el("td", {}, queued.location),
      el("td", {}, label("kind", queued.kind), " · ", label("category", queued.category)),
      el("td", {}, queued.description),
    ),
  );
  return el(
    "section",
    { class: "card" },
    el("div", { class: "card-head" }, el("h2", {}, t("dispatchHeading")), el("span", { class: "muted" }, t("waiting", queue.waiting))),
    zoneNote(),
    rows.length
      ? table([t("colSerial"), t("colPriority"), t("colReceived"), t("colUnit"), t("colKind"), t("description")], rows, { id: "dispatch-table" })
      : el("p", { class: "muted" }, t("empty")),
  );
}

// ---- Due list and follow-ups -----------------------------------------------

function dueRows(items) {
  return items.map((item) =>
    el(
      "tr",
      { class: item.state === "overdue" ? "overdue" : null },
      el("td", {}, ticketLink(item)),
      el("td", {}, item.rule),
      el("td", {}, label("duty", item.duty)),
      el("td", {}, item.location),
      el("td", {}, formatTime(item.due_at)),
      el("td", {}, el("span", { class: item.state === "overdue" ? "badge alert" : "badge warn" }, label("state", item.state))),
      el("td", {}, responsibleName(item.responsible)),
    ),
  );
}

const DUE_HEADERS = () => [t("colSerial"), t("colRule"), t("colDuty"), t("colUnit"), t("colDue"), t("colStatus"), t("colResponsible")];

export async function dueScreen() {
  const due = await api(`${API.due}?window_minutes=1440&limit=200`);
  return el(
    "section",
    { class: "card" },
    el("div", { class: "card-head" }, el("h2", {}, t("dueHeading")), zoneNote()),
    due.items.length ? table(DUE_HEADERS(), dueRows(due.items), { id: "due-table" }) : el("p", { class: "muted" }, t("empty")),
    due.left_off ? el("p", { class: "hint" }, t("leftOff", due.left_off)) : null,
  );
}

/// R-F1: the closed tickets whose follow-up is due; the call's outcome is
/// recorded on the ticket (R-F2), a new problem becomes a report (R-F3).
export async function followUpsScreen() {
  const due = await api(`${API.due}?window_minutes=10080&limit=500&rule=R-F1`);
  return el(
    "section",
    { class: "card" },
    el("div", { class: "card-head" }, el("h2", {}, t("followUpsHeading")), zoneNote()),
    due.items.length
      ? table(DUE_HEADERS(), dueRows(due.items), { id: "follow-up-table" })
      : el("p", { class: "muted" }, t("followUpsNone")),
    due.left_off ? el("p", { class: "hint" }, t("leftOff", due.left_off)) : null,
  );
}

// ---- Reports (R-C4, R-A3, R-A2) --------------------------------------------

function downloads(path, query, name) {
  return el(
    "div",
    { class: "row" },
    ["csv", "xlsx"].map((format) => {
      const button = el("button", { type: "button", class: "download", dataset: { format } }, t("download", format.toUpperCase()));
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          const url = await blobUrl(`${path}?${query()}&format=${format}`);
          const link = el("a", { href: url, download: `${name()}.${format}` });
          document.body.append(link);
          link.click();
          link.remove();
          setTimeout(() => URL.revokeObjectURL(url), 10_000);
        } catch (error) {
          button.after(failure(error));
        } finally {
          button.disabled = false;
        }
      });
      return button;
    }),
  );
}

/// One report: its date or month, what the page shows of it, and its
/// downloads. `render` makes the shown part from the JSON answer.
function reportSection({ title, id, input, path, parameter, fileName, render }) {
  const shown = el("div", { id });
  const query = () => `${parameter}=${input.value}`;
  const show = async () => {
    shown.replaceChildren(el("p", { class: "muted" }, t("loading")));
    try {
      shown.replaceChildren(...render(await api(`${path}?${query()}`)));
    } catch (error) {
      shown.replaceChildren(failure(error));
    }
  };
  show();
  return el(
    "section",
    { class: "card" },
    el("h2", {}, t(title)),
    el("div", { class: "row" }, el("label", {}, t(parameter), " ", input),
      el("button", { type: "button", onclick: show }, t("show")),
      downloads(path, query, () => `${fileName}-${input.value}`)),
    shown,
  );
}

function dailyUnclosed(report) {
  const rows = [...report.work_orders, ...report.coordination_tickets].map((item) =>
    el(
      "tr",
      {},
      el("td", {}, ticketLink(item)),
      el("td", {}, label("kind", item.kind)),
      el("td", {}, item.location),
      el("td", {}, label("status", item.status)),
      el("td", {}, String(item.age_days)),
      el("td", {}, responsibleName(item.responsible)),
    ),
  );
  return [
    rows.length
      ? table([t("colSerial"), t("colKind"), t("colUnit"), t("colStatus"), t("colAge"), t("colResponsible")], rows)
      : el("p", { class: "muted" }, t("empty")),
  ];
}

function stat(name, value) {
  return el("div", { class: "stat" }, el("strong", {}, String(value)), name);
}

function monthlyStatistics(report) {
  const rate = report.closure.closure_rate_percent;
  return [
    el(
      "div",
      { class: "stats" },
      stat(label("kind", "verbal_dispatch"), report.by_kind.verbal_dispatch),
      stat(label("kind", "work_order"), report.by_kind.work_order),
      stat(label("kind", "coordination_ticket"), report.by_kind.coordination_ticket),
      stat(label("status", "closed"), report.closure.closed),
      stat(t("closureRate"), rate === undefined ? "—" : `${rate}%`),
      stat(t("paid", yuan(report.charges.paid_fee_fen)), report.charges.paid),
      stat(t("free"), report.charges.free),
    ),
    table(
      [t("colRule"), t("colDuty"), t("met"), t("missedCount"), t("pending")],
      report.timeliness.map((tally) =>
        el("tr", {}, el("td", {}, tally.rule), el("td", {}, label("duty", tally.duty)),
          el("td", {}, String(tally.met)), el("td", {}, String(tally.missed)), el("td", {}, String(tally.pending))),
      ),
    ),
  ];
}

/// R-A2: each numbered series as the forms are filed, with R-A1's check
/// that its numbers run with no gap.
function monthlyArchive(report) {
  const row = (kind, section) =>
    el(
      "tr",
      {},
      el("td", {}, label("kind", kind)),
      el("td", { class: "mono" }, section.series),
      el("td", {}, String(section.paid.length), " · ¥", yuan(section.paid_fee_fen)),
      el("td", {}, String(section.free.length)),
      el("td", {}, String(section.not_closed.length)),
      el(
        "td",
        {},
        section.numbering.complete
          ? el("span", { class: "badge ok" }, t("numberingComplete", section.numbering.numbered))
          : el("span", { class: "badge alert" }, t("numberingGaps", section.numbering.missing_count)),
      ),
    );
  return [
    table(
      [t("colKind"), t("series"), t("paidCount"), t("free"), t("notClosed"), t("numbering")],
      [row("work_order", report.work_orders), row("coordination_ticket", report.coordination_tickets)],
      { id: "archive-table" },
    ),
  ];
}

export async function reportsScreen() {
  const granted = permissions();
  const sections = [];
  const month = estateToday().slice(0, 7);
  if (granted.reads_daily_unclosed) {
    sections.push(reportSection({
      title: "dailyUnclosed",
      id: "daily-unclosed",
      input: el("input", { id: "report-date", type: "date", value: estateToday() }),
      path: API.dailyUnclosed,
      parameter: "date",
      fileName: "daily-unclosed",
      render: dailyUnclosed,
    }));
  }
  if (granted.reads_monthly_statistics) {
    sections.push(reportSection({
      title: "monthlyStatistics",
      id: "monthly-statistics",
      input: el("input", { id: "report-month", type: "month", value: month }),
      path: API.monthly,
      parameter: "month",
      fileName: "monthly",
      render: monthlyStatistics,
    }));
    sections.push(reportSection({
      title: "monthlyArchive",
      id: "monthly-archive",
      input: el("input", { id: "archive-month", type: "month", value: month }),
      path: API.archive,
      parameter: "month",
      fileName: "archive",
      render: monthlyArchive,
    }));
  }
  return el("div", {}, el("h2", {}, t("reportsHeading")), zoneNote(), sections);
}

// ---- Users (administrators) ------------------------------------------------

/// Every user, a page at a time (an administrator manages every estate).
async function allUsers() {
  const users = [];
  let after = null;
  do {
    const page = await api(`${API.users}?limit=500${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    users.push(...page.users);
    after = page.next_after ?? null;
  } while (after);
  return users;
}

function userRow(user, roles) {
  const role = select(`role-${user.id}`, roles, user.role, { "aria-label": `${t("role")} ${user.id}` });
  const estate = el("input", { value: user.estate, size: 6, "aria-label": `${t("estate")} ${user.id}` });
  const password = el("input", {
    type: "password",
    autocomplete: "new-password",
    placeholder: t("newPassword"),
    "aria-label": `${t("newPassword")} ${user.id}`,
  });
  const status = el("span", { class: "small", role: "status" });
  const badge = el("span", {});
  let disabled = user.disabled;
  const toggle = el("button", { type: "button" });
  const showState = () => {
    badge.className = disabled ? "badge alert" : "badge ok";
    badge.textContent = disabled ? t("disabled") : t("enabled");
    toggle.textContent = disabled ? t("enable") : t("disable");
  };
  showState();
  /// Sends one change; the answer (saved, or why not) stays on the row.
  const send = async (button, path, method, body) => {
    status.textContent = "";
    button.disabled = true;
    try {
      await api(path, { method, body });
      status.textContent = t("saved");
      return true;
    } catch (error) {
      status.textContent = error.details?.problems?.length
        ? error.details.problems.map((problem) => problemText(problem.problem)).join(" · ")
        : errorText(error);
      return false;
    } finally {
      button.disabled = false;
    }
  };
  const save = el("button", { type: "button" }, t("save"));
  save.addEventListener("click", () => send(save, API.user(user.id), "PATCH", { role: role.value, estate: estate.value.trim() }));
  toggle.addEventListener("click", async () => {
    if (await send(toggle, API.user(user.id), "PATCH", { disabled: !disabled })) {
      disabled = !disabled;
      showState();
    }
  });
  const reset = el("button", { type: "button" }, t("resetPassword"));
  reset.addEventListener("click", async () => {
    if (await send(reset, `${API.user(user.id)}/password`, "POST", { password: password.value })) password.value = "";
  });
  const end = el("button", { type: "button" }, t("endSessions"));
  end.addEventListener("click", () => send(end, `${API.user(user.id)}/end-sessions`, "POST", {}));
  return el(
    "tr",
    { dataset: { user: user.id } },
    el("td", { class: "mono" }, user.id),
    el("td", {}, user.display_name),
    el("td", {}, role),
    el("td", {}, estate),
    el("td", {}, badge),
    el("td", {}, el("div", { class: "row" }, save, toggle, password, reset, end, status)),
  );
}

export async function usersScreen() {
  const users = await allUsers();
  const roles = options("role");
  const input = (id, extra = {}) => el("input", { id, name: id, ...extra });
  const username = input("new-username");
  const displayName = input("new-display-name");
  const role = select("new-role", roles, "customer_service_agent");
  const estate = input("new-estate", { value: currentSession().estate });
  const password = input("new-password", { type: "password", autocomplete: "new-password" });
  const add = el("button", { type: "submit", class: "button-primary" }, t("addUser"));
  const form = el(
    "form",
    { class: "card", id: "add-user", novalidate: true },
    el("h3", {}, t("addUser")),
    el("p", { class: "form-error", role: "alert", hidden: true }),
    el("div", { class: "form-grid" },
      field(t("username"), username, "username"),
      field(t("displayName"), displayName, "display_name"),
      field(t("role"), role, "role"),
      field(t("estate"), estate, "estate"),
      field(t("password"), password, "password")),
    add,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblems(form);
    add.disabled = true;
    try {
      await api(API.users, {
        method: "POST",
        body: {
          username: username.value.trim(),
          display_name: displayName.value.trim(),
          role: role.value,
          estate: estate.value.trim(),
          password: password.value,
        },
      });
      go("users");
    } catch (error) {
      showProblems(form, error);
    } finally {
      add.disabled = false;
    }
  });
  return el(
    "div",
    {},
    el("section", { class: "card" }, el("h2", {}, t("usersHeading")),
      table(
        [t("username"), t("displayName"), t("role"), t("estate"), t("status"), t("actions")],
        users.map((user) => userRow(user, roles)),
        { id: "user-table" },
      )),
    form,
  );
}
