// One ticket: everything it holds (history, field records with who
// recorded them and when, photos, the signature, links) and the actions
// the caller's role may take on it.

import {
  API, api, blobUrl, estateInstant, estateToday, formatTime, localParts, nameOf, newRequestKey, technicians,
  yuan, zoneName,
} from "./api.js";
import { el, field, select } from "./dom.js";
import { label, labels, t } from "./i18n.js";
import { failure, go } from "./main.js";
import { clearProblems, requiredProblem, showProblems } from "./screens.js";

export async function ticketScreen(id) {
  // The ticket, and what the caller may do with it now (the server judges
  // both the role and the ticket's state, as it will when the form is sent).
  const [ticket, offered] = await Promise.all([api(API.ticket(id)), api(API.actions(id))]);
  return el(
    "div",
    { id: "ticket-detail", dataset: { ticket: ticket.id, status: ticket.status } },
    el("p", {}, el("a", { href: "#/tickets" }, "← ", t("backToList"))),
    el(
      "div",
      { class: "detail-grid" },
      el("div", {}, summary(ticket), facts(ticket), records(ticket), history(ticket)),
      el("div", {}, actions(ticket, offered.actions)),
    ),
  );
}

function agreedTime(agreed) {
  return agreed.type === "window"
    ? `${formatTime(agreed.from)} – ${localParts(agreed.until).time}`
    : formatTime(agreed.at);
}

function link(id) {
  return el("a", { href: `#/tickets/${encodeURIComponent(id)}`, class: "mono" }, id);
}

function summary(ticket) {
  const rows = [
    [t("status"), el("strong", { id: "ticket-status" }, label("status", ticket.status))],
    [t("colKind"), `${label("kind", ticket.kind)} · ${label("category", ticket.category)} · ${label("area", ticket.area)}`],
    [t("source"), label("source", ticket.source)],
    [t("reporterName"), `${ticket.reporter.name}${ticket.reporter.phone ? " · " + ticket.reporter.phone : ""}`],
    [t("unit"), ticket.location],
    [t("description"), ticket.description],
    [t("receivedAt"), formatTime(ticket.received_at)],
    [t("receivedBy"), nameOf(ticket.received_by)],
    [t("technician"), el("span", { id: "ticket-technician" }, nameOf(ticket.assigned_technician) || "—")],
    ticket.appointment ? [t("appointment"), formatTime(ticket.appointment.at)] : null,
    ticket.booking
      ? [
          t("booking"),
          [
            `${ticket.booking.service_date} · ${agreedTime(ticket.booking.agreed_time)} · `,
            ticket.booking.fee.type === "paid" ? t("paid", yuan(ticket.booking.fee.fee_fen)) : t("free"),
            ticket.booking.staff ? ` · ${t("staff")}: ${nameOf(ticket.booking.staff)}` : "",
          ],
        ]
      : null,
    ticket.converted_from ? [t("convertedFrom"), link(ticket.converted_from)] : null,
    ticket.converted_to ? [t("convertedTo"), el("span", { id: "converted-to" }, link(ticket.converted_to))] : null,
    ticket.follow_up_of ? [t("followUpOfLink"), el("span", { id: "follow-up-of" }, link(ticket.follow_up_of))] : null,
    ticket.follow_up_reports?.length
      ? [t("followUpReports"), el("span", { id: "follow-up-reports" }, ticket.follow_up_reports.map((report) => [link(report), " "]))]
      : null,
    [t("version"), String(ticket.version)],
  ].filter(Boolean);
  return el(
    "section",
    { class: "card" },
    el(
      "div",
      { class: "card-head" },
      el("h2", { id: "ticket-heading" }, t("ticketHeading", ticket.serial_number ?? ticket.id)),
      el("span", { class: "hint" }, t("timesIn", zoneName())),
    ),
    el("dl", { class: "facts" }, rows.map(([name, value]) => [el("dt", {}, name), el("dd", {}, value)])),
  );
}

/// Who recorded a field record, and when: device time, the time the server
/// judged it happened, and whether the device's clock was trusted.
function provenance(fact) {
  const trusted = fact.event_time ? fact.event_time.trusted : true;
  return el(
    "div",
    { class: "small muted" },
    `${t("recordedBy")} ${nameOf(fact.recorded_by)} · ${t("deviceTime")} ${formatTime(fact.recorded_at)}`,
    fact.event_time ? ` · ${t("correctedTime")} ${formatTime(fact.event_time.at)}` : "",
    ` · ${t("serverReceived")} ${formatTime(fact.received_at)} · `,
    el("span", { class: trusted ? "badge ok" : "badge warn" }, trusted ? t("trusted") : t("notTrusted")),
  );
}

function image(hash, className, alt) {
  const img = el("img", { class: className, alt });
  blobUrl(API.blob(hash))
    .then((url) => {
      img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
      img.src = url;
    })
    .catch(() => {
      img.alt = `${alt} (—)`;
    });
  return img;
}

function facts(ticket) {
  const entries = [];
  const add = (kind, map, body) => {
    for (const [mutation, fact] of Object.entries(map ?? {})) {
      entries.push({ at: fact.event_time?.at ?? fact.recorded_at, node: el(
        "div",
        { class: fact.event_time && !fact.event_time.trusted ? "record untrusted" : "record", dataset: { fact: kind, mutation } },
        el("strong", {}, t(kind)),
        body(fact.body, mutation),
        provenance(fact),
      ) });
    }
  };
  add("factArrival", ticket.arrivals, () => null);
  add("factNote", ticket.notes, (body) => el("div", {}, body.text));
  add("factResult", ticket.results, (body, mutation) =>
    el(
      "div",
      {},
      body.work_done,
      body.materials?.length
        ? el("div", { class: "small" }, `${t("materials")}: `, body.materials.map((m) => `${m.name} × ${m.quantity}`).join("，"))
        : null,
      el("div", { class: "small" }, body.charge.type === "paid" ? t("paid", yuan(body.charge.fee_fen)) : t("free"),
        ticket.current_result && ticket.current_result !== mutation ? ` · ${t("replaced")}` : ""),
    ),
  );
  add("factSignature", ticket.signatures, (body) =>
    el(
      "div",
      {},
      el("div", { class: "small" }, `${t("signer")}: ${body.signer_name}`, body.rating ? ` · ${t("rating")}: ${label("rating", body.rating)}` : ""),
      image(body.blob, "signature", t("factSignature")),
    ),
  );
  add("factPhoto", ticket.photos, (body) => image(body.blob, "photo", t("factPhoto")));
  entries.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  return el(
    "section",
    { class: "card", id: "ticket-facts" },
    el("h3", {}, t("facts")),
    entries.length ? entries.map((entry) => entry.node) : el("p", { class: "muted" }, t("empty")),
  );
}

function records(ticket) {
  const list = (title, items, line) =>
    items?.length ? [el("h4", {}, title), el("ul", {}, items.map((item) => el("li", {}, line(item))))] : null;
  const content = [
    list(t("officeNotes"), ticket.office_notes, (note) => `${formatTime(note.at)} ${nameOf(note.by)}：${note.text}`),
    list(t("signOffs"), ticket.sign_offs, (sign) => `${formatTime(sign.at)} ${nameOf(sign.by)} ${sign.note ?? ""}`),
    list(t("tracking"), ticket.tracking, (record) =>
      `${formatTime(record.at)} ${nameOf(record.by)} · ${label("tracking", record.kind.type)}${record.note ? "：" + record.note : ""}`),
    list(t("followUps"), ticket.follow_ups, (followUp) =>
      `${formatTime(followUp.at)} ${nameOf(followUp.by)} · ${followUp.reached ? t("reached") : t("notReached")}` +
      `${followUp.rating ? " · " + label("rating", followUp.rating) : ""}${followUp.note ? "：" + followUp.note : ""}`),
  ].filter(Boolean);
  return content.length ? el("section", { class: "card", id: "ticket-records" }, content) : null;
}

function history(ticket) {
  return el(
    "section",
    { class: "card", id: "ticket-history" },
    el("h3", {}, t("history")),
    el(
      "ol",
      { class: "history" },
      ticket.history.map((entry) =>
        el(
          "li",
          { dataset: { event: entry.event.type } },
          `${formatTime(entry.at)} · ${entry.actor.type === "scheduler" ? labels("scheduler") : nameOf(entry.actor.user)} · `,
          el("strong", {}, label("event", entry.event.type)),
          eventDetail(entry.event),
          entry.status_change ? ` → ${label("status", entry.status_change.to)}` : "",
        ),
      ),
    ),
  );
}

function eventDetail(event) {
  switch (event.type) {
    case "dispatched":
      return ` ${nameOf(event.technician)}`;
    case "reassigned":
      return ` ${nameOf(event.from)} → ${nameOf(event.to)}（${event.reason}）`;
    case "appointment_set":
      return ` ${formatTime(event.at)}`;
    case "deadline_missed":
      return ` ${event.rule} · ${formatTime(event.due_at)}`;
    case "cancelled":
      return ` ${event.reason ?? ""}`;
    case "fact_recorded":
      return ` ${label("fact", event.fact)}`;
    default:
      return "";
  }
}

// ---- Actions ---------------------------------------------------------------

function actions(ticket, offered) {
  return el(
    "section",
    { class: "card", id: "ticket-actions" },
    el("h3", {}, t("actions")),
    offered.length ? offered.map((name) => actionForm(ticket, name)) : el("p", { class: "muted" }, t("noActions")),
  );
}

/// A required value, or the field marked and the form not sent.
class Missing extends Error {
  constructor(field) {
    super(field);
    this.field = field;
  }
}

function required(value, name) {
  if (value === undefined || value === "") throw new Missing(name);
  return value;
}

function actionForm(ticket, action) {
  const input = (id, extra = {}) => el("input", { id: `${action}-${id}`, name: id, ...extra });
  const text = (id) => el("textarea", { id: `${action}-${id}`, name: id });
  const fields = [];
  const read = {};
  let extraAfter = null;
  switch (action) {
    case "dispatch":
    case "reassign": {
      // Someone else than the technician who holds it (R-D1).
      const choices = technicians().filter((person) => person.user !== ticket.assigned_technician);
      const technician = select(
        `${action}-technician`,
        [["", t("chooseTechnician")], ...choices.map((p) => [p.user, p.display_name])],
        "",
      );
      fields.push(field(t("technician"), technician, "technician"));
      read.technician = () => required(technician.value, "technician");
      if (action === "reassign") {
        const reason = text("reason");
        fields.push(field(t("reason"), reason, "reason"));
        read.reason = () => required(reason.value.trim(), "reason");
      }
      const suggestions = el("div", { class: "suggestions", id: `${action}-suggestions` });
      api(API.suggestions(ticket.id))
        .then((answer) =>
          suggestions.replaceChildren(
            el("div", { class: "small muted" }, t("suggestions")),
            ...answer.suggestions
              .filter((suggestion) => suggestion.technician !== ticket.assigned_technician)
              .slice(0, 5)
              .map((suggestion) =>
                el(
                  "div",
                  { class: "suggestion" },
                  el("span", {}, `${suggestion.rank}. `, el("strong", {}, suggestion.display_name),
                    el("span", { class: "small muted" }, ` ${t("suggestionLoad", suggestion.open_load, suggestion.same_building_jobs)}`)),
                  el("button", {
                    type: "button",
                    class: "use-suggestion",
                    "aria-label": `${t("chooseTechnician")}: ${suggestion.display_name}`,
                    dataset: { technician: suggestion.technician },
                    onclick: () => { technician.value = suggestion.technician; },
                  }, "✓"),
                ),
              ),
          ),
        )
        .catch(() => suggestions.replaceChildren());
      extraAfter = suggestions;
      break;
    }
    case "set_appointment": {
      const date = input("date", { type: "date", value: estateToday() });
      const time = input("time", { type: "time", value: "14:00" });
      const note = input("note");
      fields.push(field(t("date"), date, "at"), field(t("at"), time), field(t("note"), note, "note"));
      read.at = () => required(estateInstant(date.value, time.value), "at");
      read.note = () => note.value.trim();
      break;
    }
    case "reschedule_booking": {
      // The agreed time as it is, in the estate's zone: moving the date
      // alone keeps the hours.
      const agreed = ticket.booking.agreed_time;
      const start = localParts(agreed.type === "window" ? agreed.from : agreed.at);
      const end = localParts(agreed.type === "window" ? agreed.until : agreed.at);
      const date = input("date", { type: "date", value: ticket.booking.service_date });
      const from = input("from", { type: "time", value: start.time });
      const until = input("until", { type: "time", value: end.time });
      fields.push(field(t("serviceDate"), date, "service_date"), field(t("agreedFrom"), from, "agreed_time"), field(t("agreedUntil"), until));
      read.service_date = () => required(date.value, "service_date");
      read.agreed_time = () => ({
        type: "window",
        from: required(estateInstant(date.value, from.value), "agreed_time"),
        until: required(estateInstant(date.value, until.value), "agreed_time"),
      });
      break;
    }
    case "cancel":
    case "convert": {
      const reason = text("reason");
      fields.push(field(t("reason"), reason, "reason"));
      read.reason = () => required(reason.value.trim(), "reason");
      break;
    }
    case "add_note": {
      const note = text("text");
      fields.push(field(t("note"), note, "text"));
      read.text = () => required(note.value.trim(), "text");
      break;
    }
    case "sign_off": {
      const note = input("note");
      fields.push(field(t("note"), note, "note"));
      read.note = () => note.value.trim();
      break;
    }
    case "track": {
      const kinds = Object.entries(labels("tracking"));
      const kind = select(`${action}-kind`, kinds, "check");
      const date = input("date", { type: "date", value: estateToday() });
      const time = input("time", { type: "time", value: "" });
      const reached = el("input", { type: "checkbox", id: `${action}-reached`, checked: true });
      const rejected = el("input", { type: "checkbox", id: `${action}-rejected` });
      const note = input("note");
      // The inspection's time only for a booked inspection (R-P3); reached
      // and rejected only for a contact with the owner (R-P5).
      const when = el("div", { class: "row" }, field(t("date"), date, "kind.at"), field(t("at"), time));
      const contact = el("div", { class: "row" },
        el("label", {}, reached, " ", t("reached")),
        el("label", {}, rejected, " ", t("proposalRejected")));
      const show = () => {
        when.hidden = kind.value !== "inspection_booked";
        contact.hidden = kind.value !== "owner_contact";
      };
      kind.addEventListener("change", show);
      reached.addEventListener("change", () => {
        rejected.disabled = !reached.checked;
        if (!reached.checked) rejected.checked = false;
      });
      show();
      fields.push(field(t("trackingKind"), kind, "kind"), when, contact, field(t("note"), note, "note"));
      read.kind = () => {
        const chosen = { type: kind.value };
        if (kind.value === "inspection_booked") chosen.at = required(estateInstant(date.value, time.value), "kind.at");
        if (kind.value === "owner_contact") {
          chosen.reached = reached.checked;
          chosen.proposal_rejected = rejected.checked;
        }
        return chosen;
      };
      read.note = () => note.value.trim();
      break;
    }
    case "record_follow_up": {
      const reached = el("input", { type: "checkbox", id: `${action}-reached`, checked: true });
      const rating = select(`${action}-rating`, [["", "—"], ...Object.entries(labels("rating"))], "");
      const note = text("note");
      const newProblem = el("input", { type: "checkbox", id: `${action}-new-problem` });
      // An owner who was not reached gave no rating (R-F2).
      reached.addEventListener("change", () => {
        rating.disabled = !reached.checked;
        if (!reached.checked) rating.value = "";
      });
      fields.push(
        el("label", {}, reached, " ", t("reached")),
        field(t("rating"), rating, "rating"),
        field(t("note"), note, "note"),
        el("label", {}, newProblem, " ", t("newProblem")),
      );
      read.reached = () => reached.checked;
      read.rating = () => (reached.checked && rating.value) || undefined;
      read.note = () => note.value.trim();
      read.newProblem = () => newProblem.checked;
      break;
    }
    default:
      break;
  }
  const submit = el("button", { type: "submit", class: action === "cancel" ? "button-danger" : "button-primary" }, t(`act_${action}`));
  const form = el(
    "form",
    { class: "action", id: `action-${action}`, novalidate: true },
    el("h4", {}, t(`act_${action}`)),
    el("p", { class: "form-error", role: "alert", hidden: true }),
    fields,
    extraAfter,
    submit,
  );
  // One key per action form: a double click or a retry is the same action.
  const key = newRequestKey();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblems(form);
    submit.disabled = true;
    try {
      const op = { type: action };
      for (const [name, value] of Object.entries(read)) {
        if (name === "newProblem") continue;
        const current = value();
        if (current !== undefined && current !== "") op[name] = current;
      }
      await api(API.actions(ticket.id), {
        method: "POST",
        body: { expected_version: ticket.version, op },
        key,
      });
      if (read.newProblem?.()) {
        // R-F3: the new problem is a new report, linked to this ticket.
        go(`intake/${encodeURIComponent(ticket.id)}`);
      } else {
        go(`tickets/${encodeURIComponent(ticket.id)}`);
      }
    } catch (error) {
      if (error.status === 401) {
        form.replaceChildren(failure(error));
        return;
      }
      showProblems(form, error instanceof Missing ? requiredProblem(error.field) : error);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
