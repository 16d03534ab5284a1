// The office console's shell: login, the screens each role has (as the
// server's permissions say), and the `#/…` routes between them.

import { API, api, currentSession, loadPeople, logIn, logOut } from "./api.js";
import { el } from "./dom.js";
import { errorText, label, language, setLanguage, t, translatePage } from "./i18n.js";
import {
  dispatchScreen, dueScreen, followUpsScreen, intakeScreen, reportsScreen, ticketsScreen, usersScreen,
} from "./screens.js";
import { ticketScreen } from "./ticket.js";

/// The screens, in menu order, with who has them.
const SCREENS = [
  { route: "intake", label: "navIntake", has: (p) => p.takes_reports, show: intakeScreen },
  { route: "tickets", label: "navTickets", has: (p) => p.role !== "administrator", show: ticketsScreen },
  { route: "dispatch", label: "navDispatch", has: (p) => p.dispatches, show: dispatchScreen },
  { route: "due", label: "navDue", has: (p) => p.role !== "administrator", show: dueScreen },
  {
    route: "follow-ups",
    label: "navFollowUps",
    has: (p) => p.actions.some((grant) => grant.actions.includes("record_follow_up")),
    show: followUpsScreen,
  },
  {
    route: "reports",
    label: "navReports",
    has: (p) => p.reads_daily_unclosed || p.reads_monthly_statistics,
    show: reportsScreen,
  },
  { route: "users", label: "navUsers", has: (p) => p.administers_users, show: usersScreen },
];

const state = { permissions: null };

function screensOf(permissions) {
  return SCREENS.filter((screen) => screen.has(permissions));
}

/// Whether the caller's role may take `action` on `ticket`.
export function allows(ticket, action) {
  return (state.permissions?.actions ?? []).some(
    (grant) => grant.kind === ticket.kind && grant.category === ticket.category && grant.actions.includes(action),
  );
}

export function permissions() {
  return state.permissions;
}

/// Go to a route (`tickets`, `tickets/tk00000001`).
export function go(route) {
  if (location.hash === `#/${route}`) render();
  else location.hash = `#/${route}`;
}

/// An error shown where the screen was, in the page's language.
export function failure(error) {
  if (error?.status === 401) {
    logOut();
    start();
    return el("p");
  }
  return el("p", { class: "notice alert", role: "alert" }, errorText(error));
}

async function start() {
  const loginView = document.getElementById("login-view");
  const view = document.getElementById("view");
  const session = currentSession();
  document.getElementById("nav").hidden = !session;
  document.getElementById("log-out").hidden = !session;
  const signedIn = document.getElementById("signed-in-as");
  signedIn.hidden = !session;
  if (!session) {
    state.permissions = null;
    view.replaceChildren();
    loginView.hidden = false;
    return;
  }
  loginView.hidden = true;
  signedIn.textContent = `${session.display_name} · ${label("role", session.role)}`;
  try {
    state.permissions = await api(API.permissions);
    await loadPeople();
  } catch (error) {
    view.replaceChildren(failure(error));
    return;
  }
  render();
}

function renderNav(screens, current) {
  const nav = document.getElementById("nav");
  nav.replaceChildren(
    ...screens.map((screen) =>
      el(
        "a",
        { href: `#/${screen.route}`, "aria-current": screen.route === current ? "page" : null },
        t(screen.label),
      ),
    ),
  );
}

async function render() {
  const view = document.getElementById("view");
  const session = currentSession();
  if (!session || !state.permissions) return;
  const screens = screensOf(state.permissions);
  const [route, id] = location.hash.replace(/^#\/?/, "").split("/");
  const screen = screens.find((candidate) => candidate.route === route) ?? screens[0];
  renderNav(screens, screen?.route);
  if (session.role === "technician") {
    // Technicians work in the field app; here they see only their own tickets.
    view.replaceChildren(
      el(
        "p",
        { class: "notice ok" },
        t("technicianGoToApp"),
        " ",
        el("a", { href: "/app", id: "open-app" }, t("openApp")),
      ),
    );
  } else {
    view.replaceChildren();
  }
  if (!screen) {
    view.append(el("p", { class: "notice" }, t("noScreens")));
    return;
  }
  const container = el("div", { class: "screen" }, el("p", { class: "muted" }, t("loading")));
  view.append(container);
  try {
    const content =
      route === "tickets" && id ? await ticketScreen(decodeURIComponent(id)) : await screen.show(id);
    container.replaceChildren(content);
  } catch (error) {
    container.replaceChildren(failure(error));
  }
}

function setUp() {
  setLanguage(language());
  const languageSelect = document.getElementById("language");
  languageSelect.value = language();
  translatePage();
  languageSelect.addEventListener("change", () => {
    setLanguage(languageSelect.value);
    translatePage();
    start();
  });
  document.getElementById("log-out").addEventListener("click", () => {
    logOut();
    location.hash = "";
    start();
  });
  document.getElementById("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const problem = document.getElementById("login-error");
    problem.hidden = true;
    const button = event.target.querySelector("button");
    button.disabled = true;
    try {
      await logIn(document.getElementById("username").value.trim(), document.getElementById("password").value);
      document.getElementById("password").value = "";
      await start();
    } catch (error) {
      problem.textContent = errorText(error);
      problem.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  window.addEventListener("hashchange", render);
  start();
}

setUp();
