// The console's side of the HTTP API: the session (login, renewal), JSON
// requests with their stable error codes, downloads, people's names and
// times in the estate's zone.

import { language } from "./i18n.js";

const SESSION_KEY = "console.session";
const DEVICE_KEY = "console.device";
/// Renew the access token this long before it expires.
const RENEW_AHEAD_MS = 60_000;

export const API = {
  login: "/api/v1/auth/login",
  refresh: "/api/v1/auth/refresh",
  permissions: "/api/v1/permissions",
  people: "/api/v1/people",
  units: "/api/v1/units",
  tickets: "/api/v1/tickets",
  ticket: (id) => `/api/v1/tickets/${encodeURIComponent(id)}`,
  actions: (id) => `/api/v1/tickets/${encodeURIComponent(id)}/actions`,
  suggestions: (id) => `/api/v1/tickets/${encodeURIComponent(id)}/suggestions`,
  cards: "/api/v1/ticket-cards",
  dispatchQueue: "/api/v1/dispatch-queue",
  due: "/api/v1/due",
  blob: (hash) => `/api/v1/blobs/${encodeURIComponent(hash)}`,
  dailyUnclosed: "/api/v1/reports/daily-unclosed",
  monthly: "/api/v1/reports/monthly",
  archive: "/api/v1/reports/monthly-archive",
  users: "/api/v1/admin/users",
  user: (id) => `/api/v1/admin/users/${encodeURIComponent(id)}`,
};

/// A refused or failed request: the server's stable code, its status and details.
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let session = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
let renewing = null;
let renewTimer = null;
const people = new Map();

export function currentSession() {
  return session;
}

function deviceId() {
  let id = sessionStorage.getItem(DEVICE_KEY);
  if (!id) {
    id = "console-" + randomHex(8);
    sessionStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

function randomHex(bytes) {
  const random = new Uint8Array(bytes);
  crypto.getRandomValues(random);
  return Array.from(random, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/// A new `Idempotency-Key`: one per form submission, kept across its retries.
export function newRequestKey() {
  return "c-" + randomHex(16);
}

function keep(login) {
  session = {
    token: login.token,
    refresh_token: login.refresh_token,
    user: login.user,
    display_name: login.display_name,
    role: login.role,
    estate: login.estate,
    time_zone: login.time_zone,
    expires_at: login.expires_at,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  clearTimeout(renewTimer);
  const inMs = Date.parse(session.expires_at) - Date.now() - RENEW_AHEAD_MS;
  renewTimer = setTimeout(() => session && renew(), Math.max(inMs, 1000));
}

export async function logIn(username, password) {
  const login = await request(API.login, {
    method: "POST",
    body: { username, password, device_id: deviceId() },
    anonymous: true,
  });
  keep(login);
  return session;
}

export function logOut() {
  session = null;
  people.clear();
  clearTimeout(renewTimer);
  sessionStorage.removeItem(SESSION_KEY);
}

/// A new access token for the refresh token; one renewal at a time.
function renew() {
  if (!renewing) {
    renewing = (async () => {
      try {
        const login = await request(API.refresh, {
          method: "POST",
          body: { refresh_token: session.refresh_token, device_id: deviceId() },
          anonymous: true,
        });
        keep(login);
        return true;
      } catch {
        return false;
      } finally {
        renewing = null;
      }
    })();
  }
  return renewing;
}

async function request(path, { method = "GET", body, key, anonymous = false, raw = false } = {}) {
  const headers = { Accept: raw ? "*/*" : "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["Idempotency-Key"] = key;
  if (!anonymous && session) headers.Authorization = `Bearer ${session.token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "network");
  }
  if (response.ok) return raw ? response : response.json();
  let error = { code: "http_" + response.status, message: response.statusText };
  try {
    error = await response.json();
  } catch {
    // Not JSON: keep the status.
  }
  throw new ApiError(response.status, error.code, error.message, error.details);
}

/// A request with the session; an expired token is renewed once and the
/// request sent again (with the same `Idempotency-Key`, so nothing doubles).
export async function api(path, options = {}) {
  try {
    return await request(path, options);
  } catch (error) {
    if (error.status === 401 && session && (await renew())) return request(path, options);
    throw error;
  }
}

/// A file of the API (a report, an image) as a `blob:` URL.
export async function blobUrl(path) {
  const response = await api(path, { raw: true });
  return URL.createObjectURL(await response.blob());
}

/// The people of the estate, once per session (names, not ids).
export async function loadPeople() {
  const answer = await api(API.people);
  for (const person of answer.people) people.set(person.user, person);
  return answer.people;
}

export function nameOf(user) {
  if (!user) return "";
  return people.get(user)?.display_name ?? user;
}

export function technicians() {
  return [...people.values()].filter((person) => person.role === "technician" && !person.disabled);
}

function zone() {
  return session?.time_zone ?? "Asia/Shanghai";
}

export function zoneName() {
  return zone();
}

/// A time in the estate's zone, however the computer is set.
export function formatTime(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(language(), {
    timeZone: zone(),
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).format(new Date(iso));
}

/// Today's date (`YYYY-MM-DD`) in the estate's zone.
export function estateToday() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone() }).format(new Date());
}

/// The estate zone's calendar fields of an instant, as numbers' strings.
function zoneFields(instant) {
  return Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone: zone(),
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    })
      .formatToParts(instant)
      .map((part) => [part.type, part.value]),
  );
}

/// The local date (`YYYY-MM-DD`) and time (`HH:MM`) of an instant in the
/// estate's zone.
export function localParts(iso) {
  const parts = zoneFields(new Date(iso));
  return { date: `${parts.year}-${parts.month}-${parts.day}`, time: `${parts.hour}:${parts.minute}` };
}

/// The instant of a local date and time (`YYYY-MM-DD`, `HH:MM`) in the
/// estate's zone, as RFC 3339 UTC; `undefined` when either is missing or
/// not a date or time.
export function estateInstant(date, time) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date ?? "") || !/^\d{2}:\d{2}$/.test(time ?? "")) return undefined;
  const guess = new Date(`${date}T${time}:00Z`);
  if (Number.isNaN(guess.getTime())) return undefined;
  // The zone's offset at that moment, read back from the formatted guess.
  const parts = zoneFields(guess);
  const shown = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  return new Date(guess.getTime() - (shown - guess.getTime())).toISOString().replace(".000Z", "Z");
}

/// Money in fen as yuan with two decimals.
export function yuan(fen) {
  return (fen / 100).toFixed(2);
}
