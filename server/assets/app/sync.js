// The per-ticket versioned sync protocol (docs/protocol.md section 2), as
// the reference handheld speaks it: pull pages with their cursor, upload
// images, push the outbox oldest first and, when an answer is lost, send
// the same mutations with the same numbers again.

import * as store from "./db.js";

export const PROTOCOL_VERSION = 1;
export const APP_VERSION = "web-1";
/// At most this many mutations, and about this many bytes, per push (the
/// server takes 500 and 2 MiB).
const MAX_BATCH = 500;
const MAX_BATCH_BYTES = 1536 * 1024;
const PULL_LIMIT = 100;
/// The access token is renewed this long before it expires.
const RENEW_AHEAD_MS = 60000;
/// Deadlines shown for a week ahead.
const DUE_WINDOW_MINUTES = 7 * 24 * 60;

/// The server refused the session: the technician must log in again.
export class LoginNeeded extends Error {}

/// An answer with an error body: `code` is the stable machine-readable one.
export class Refused extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code ? body.code : `http_${status}`;
    this.details = (body && body.details) || {};
  }
}

export async function logIn(db, username, password) {
  const device = await store.deviceId(db);
  const response = await call("/api/v1/auth/login", {
    method: "POST",
    body: { username, password, device_id: device },
  });
  if (response.role !== "technician") throw new Refused(403, { code: "not_technician" });
  await saveSession(db, response);
  return response;
}

export class Syncer {
  constructor(db, onChange) {
    this.db = db;
    this.onChange = onChange;
    this.running = null;
  }

  /// One whole sync; a second call while one runs joins it.
  sync() {
    if (!this.running) {
      this.running = this.run().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  async run() {
    this.onChange({ syncing: true });
    try {
      await this.pull();
      await this.uploadImages();
      await this.push();
      await this.uploadImages();
      await this.pull();
      await this.readDeadlines();
      await store.setMeta(this.db, "last_sync_ms", Date.now());
      return { ok: true };
    } catch (error) {
      if (error instanceof LoginNeeded) {
        const session = await store.meta(this.db, "session");
        if (session) await store.setMeta(this.db, "session", { ...session, expired: true });
      }
      return { ok: false, error };
    } finally {
      this.onChange({ syncing: false });
    }
  }

  async pull() {
    for (;;) {
      const cursor = (await store.meta(this.db, "cursor")) ?? 0;
      let page;
      try {
        page = await this.authorized("/api/v1/sync/pull", {
          protocol_version: PROTOCOL_VERSION,
          device: await this.report(),
          cursor,
          limit: PULL_LIMIT,
        });
      } catch (error) {
        // The server's data is older than this phone's cursor: start over.
        if (error instanceof Refused && error.code === "cursor_ahead") {
          await store.setMeta(this.db, "cursor", 0);
          continue;
        }
        throw error;
      }
      await store.applyPage(this.db, page.changes, page.next_cursor);
      this.onChange({});
      if (!page.has_more) return;
    }
  }

  /// Oldest first, in batches; an unanswered batch is sent again unchanged.
  async push() {
    for (;;) {
      const waiting = await store.outbox(this.db);
      if (waiting.length === 0) return;
      const batch = [];
      let bytes = 0;
      for (const entry of waiting) {
        const size = JSON.stringify(entry.mutation).length * 3;
        if (batch.length === MAX_BATCH || (batch.length > 0 && bytes + size > MAX_BATCH_BYTES)) break;
        batch.push(entry.mutation);
        bytes += size;
      }
      let answer;
      try {
        answer = await this.authorized("/api/v1/sync/push", {
          protocol_version: PROTOCOL_VERSION,
          device: await this.report(),
          mutations: batch,
        });
      } catch (error) {
        if (error instanceof Refused && error.code === "sequence_gap") {
          // Numbers the server never processed: renumber from where it is.
          await store.renumber(this.db, error.details.expected_seq);
          continue;
        }
        throw error;
      }
      await store.applyAnswers(this.db, batch, answer.outcomes);
      // The server lacks an image this phone thought it sent: send it again.
      for (const hash of answer.missing_blobs) await store.setUploaded(this.db, hash, false);
      this.onChange({});
    }
  }

  /// Each image on its own, so an upload cut off resumes with the next one.
  async uploadImages() {
    for (const image of await store.blobsToUpload(this.db)) {
      try {
        await this.authorized(`/api/v1/blobs/${image.hash}`, image.bytes, "PUT");
      } catch (error) {
        // Too many images wait for their mutations: push them first.
        if (error instanceof Refused && error.code === "too_many_pending_blobs") return;
        throw error;
      }
      await store.setUploaded(this.db, image.hash, true);
      this.onChange({});
    }
  }

  async readDeadlines() {
    const due = await this.authorized(
      `/api/v1/due?window_minutes=${DUE_WINDOW_MINUTES}&limit=500`,
      null,
      "GET",
    );
    await store.setMeta(this.db, "due", { items: due.items, read_ms: Date.now() });
  }

  async report() {
    const summary = await store.outboxSummary(this.db);
    const report = {
      device_id: await store.deviceId(this.db),
      app_version: APP_VERSION,
      outbox_depth: summary.depth,
      device_time: new Date().toISOString(),
    };
    if (summary.oldestAgeMs !== null) report.oldest_pending_age_ms = summary.oldestAgeMs;
    return report;
  }

  /// A call with the access token, renewed first when it is about to
  /// expire and once more if the server refuses it.
  async authorized(path, body, method = "POST") {
    let session = await this.freshSession();
    try {
      return await call(path, { method, body, token: session.token });
    } catch (error) {
      if (!(error instanceof Refused) || error.status !== 401) throw error;
      session = await this.renew(session);
      return call(path, { method, body, token: session.token });
    }
  }

  async freshSession() {
    const session = await store.meta(this.db, "session");
    if (!session || session.expired) throw new LoginNeeded();
    if (Date.parse(session.expires_at) - Date.now() > RENEW_AHEAD_MS) return session;
    return this.renew(session);
  }

  async renew(session) {
    try {
      const renewed = await call("/api/v1/auth/refresh", {
        method: "POST",
        body: { refresh_token: session.refresh_token, device_id: await store.deviceId(this.db) },
      });
      return saveSession(this.db, renewed);
    } catch (error) {
      if (error instanceof Refused && error.status === 401) throw new LoginNeeded();
      throw error;
    }
  }
}

async function saveSession(db, response) {
  const session = { ...response, expired: false };
  await store.setMeta(db, "session", session);
  return session;
}

/// One HTTP call: JSON in and out (raw bytes for an image upload); an
/// error body becomes `Refused`, a lost connection a `TypeError`.
async function call(path, { method, body, token }) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof Blob || body instanceof ArrayBuffer || ArrayBuffer.isView(body)) {
    headers["content-type"] = "application/octet-stream";
    payload = body;
  } else if (body !== null && body !== undefined) {
    headers["content-type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, cache: "no-store" });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) throw new Refused(response.status, parsed);
  return parsed;
}
