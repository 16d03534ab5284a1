// The phone's own copy: tickets, the outbox of recorded changes, their
// answers and the images, in IndexedDB. A change gets its sequence number in
// the same transaction that stores it, so a number is never given twice nor
// lost; a pulled page is stored with the cursor it moves to.

import { openDB } from "./idb.js";

const DB_NAME = "estate-sync-app";
const DB_VERSION = 1;
/// Facts are written with strict durability: stored means on disk.
const STRICT = { durability: "strict" };
/// Answers kept for the technician to read; the oldest read ones go first.
const MAX_OUTCOMES = 500;

export function open() {
  return openDB(DB_NAME, DB_VERSION, {
    upgrade(db) {
      db.createObjectStore("meta");
      db.createObjectStore("tickets", { keyPath: "id" });
      db.createObjectStore("outbox", { keyPath: "seq" }).createIndex("ticket", "ticket_id");
      db.createObjectStore("outcomes", { keyPath: "seq" });
      db.createObjectStore("blobs", { keyPath: "hash" }).createIndex("ticket", "ticket_id");
    },
  });
}

export function meta(db, key) {
  return db.get("meta", key);
}

export function setMeta(db, key, value) {
  return db.put("meta", value, key);
}

/// This phone's device id, made once: `app-` and 16 random hex digits.
export async function deviceId(db) {
  // Asked on every request: a read, and a write only the first time.
  const known = await db.get("meta", "device_id");
  if (known) return known;
  const tx = db.transaction("meta", "readwrite", STRICT);
  let id = await tx.store.get("device_id");
  if (!id) {
    const random = crypto.getRandomValues(new Uint8Array(8));
    id = "app-" + Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
    await tx.store.put(id, "device_id");
  }
  await tx.done;
  return id;
}

/// Record one change on `ticket`: the next sequence number, the mutation and
/// its images, in one transaction. Returns the mutation as it will be sent.
export async function record(db, ticket, op, images = [], now = new Date()) {
  const tx = db.transaction(["meta", "outbox", "blobs"], "readwrite", STRICT);
  const metaStore = tx.objectStore("meta");
  const seq = (await metaStore.get("next_seq")) ?? 1;
  const mutation = {
    seq,
    ticket_id: ticket.id,
    base_version: ticket.version,
    recorded_at: now.toISOString(),
    op,
  };
  await tx.objectStore("outbox").add({
    seq,
    ticket_id: ticket.id,
    mutation,
    recorded_ms: now.getTime(),
  });
  const blobs = tx.objectStore("blobs");
  for (const image of images) {
    if (!(await blobs.get(image.hash))) {
      await blobs.put({ ...image, ticket_id: ticket.id, uploaded: false });
    }
  }
  await metaStore.put(seq + 1, "next_seq");
  await tx.done;
  return mutation;
}

export function outbox(db) {
  return db.getAll("outbox");
}

export async function outboxSummary(db, now = Date.now()) {
  const tx = db.transaction("outbox");
  const depth = await tx.store.count();
  const oldest = await tx.store.openCursor();
  await tx.done;
  return {
    depth,
    oldestAgeMs: oldest ? Math.max(0, now - oldest.value.recorded_ms) : null,
  };
}

export function tickets(db) {
  return db.getAll("tickets");
}

export function ticket(db, id) {
  return db.get("tickets", id);
}

export function pendingOf(db, ticketId) {
  return db.getAllFromIndex("outbox", "ticket", ticketId);
}

/// Apply one pulled page and store the cursor after it, together: a crash
/// in between repeats the page rather than skipping it.
export async function applyPage(db, changes, nextCursor) {
  const tx = db.transaction(["tickets", "outbox", "blobs", "meta"], "readwrite", STRICT);
  const stored = tx.objectStore("tickets");
  for (const change of changes) {
    if (change.type === "upsert") {
      await stored.put({ id: change.ticket.id, ticket: change.ticket });
      continue;
    }
    // Revoked: gone once nothing recorded on it waits to upload.
    const waiting = await tx.objectStore("outbox").index("ticket").count(change.ticket_id);
    const local = await stored.get(change.ticket_id);
    if (waiting > 0 && local) {
      await stored.put({ ...local, revoked: change.reason });
    } else if (local) {
      await dropTicket(tx, change.ticket_id);
    }
  }
  await tx.objectStore("meta").put(nextCursor, "cursor");
  await tx.done;
}

/// Store the answers of a push: each answered mutation leaves the outbox,
/// its outcome is kept, and a revoked ticket with nothing left waiting goes.
export async function applyAnswers(db, batch, outcomes, now = Date.now()) {
  const tx = db.transaction(["tickets", "outbox", "outcomes", "blobs"], "readwrite", STRICT);
  const touched = new Set();
  const sentBySeq = new Map(batch.map((mutation) => [mutation.seq, mutation]));
  for (const answer of outcomes) {
    // The wire form is flat: `{seq, ticket_id, outcome: "applied", …}`.
    const { seq, ticket_id: ticketId, ...outcome } = answer;
    const sent = sentBySeq.get(seq);
    await tx.objectStore("outbox").delete(seq);
    await tx.objectStore("outcomes").put({
      seq,
      ticket_id: ticketId,
      op: sent ? sent.op.type : null,
      outcome,
      answered_ms: now,
      attention: needsAttention(outcome),
      read: false,
    });
    touched.add(answer.ticket_id);
  }
  for (const id of touched) {
    const local = await tx.objectStore("tickets").get(id);
    const waiting = await tx.objectStore("outbox").index("ticket").count(id);
    if (local && local.revoked && waiting === 0) await dropTicket(tx, id);
  }
  await pruneOutcomes(tx.objectStore("outcomes"));
  await tx.done;
}

/// Late or refused, first time or on a replay: the technician should know.
export function needsAttention(outcome) {
  const verdict = outcome.outcome === "duplicate" ? outcome.first : outcome;
  return verdict.outcome === "rejected" || Boolean(verdict.late);
}

export function outcomes(db) {
  return db.getAll("outcomes");
}

export async function markRead(db, seq) {
  const tx = db.transaction("outcomes", "readwrite");
  const answer = await tx.store.get(seq);
  if (answer) await tx.store.put({ ...answer, read: true });
  await tx.done;
}

/// Images not yet on the server, oldest ticket first.
export async function blobsToUpload(db) {
  return (await db.getAll("blobs")).filter((blob) => !blob.uploaded);
}

export function blob(db, hash) {
  return db.get("blobs", hash);
}

export async function setUploaded(db, hash, uploaded) {
  const tx = db.transaction("blobs", "readwrite", STRICT);
  const stored = await tx.store.get(hash);
  if (stored && stored.uploaded !== uploaded) await tx.store.put({ ...stored, uploaded });
  await tx.done;
}

/// Give the waiting mutations new numbers from `first` on (the server never
/// processed these numbers: a device bug or a lost store on its side).
export async function renumber(db, first) {
  const tx = db.transaction(["outbox", "meta"], "readwrite", STRICT);
  const waiting = await tx.objectStore("outbox").getAll();
  await tx.objectStore("outbox").clear();
  let seq = first;
  for (const entry of waiting) {
    const mutation = { ...entry.mutation, seq };
    await tx.objectStore("outbox").add({ ...entry, seq, mutation });
    seq += 1;
  }
  await tx.objectStore("meta").put(seq, "next_seq");
  await tx.done;
}

/// A different technician on this phone, with nothing of the last one
/// waiting: start afresh, with a new device id (a device belongs to the
/// technician who first used it).
export async function startAfresh(db) {
  const stores = ["meta", "tickets", "outbox", "outcomes", "blobs"];
  const tx = db.transaction(stores, "readwrite", STRICT);
  const language = await tx.objectStore("meta").get("language");
  for (const name of stores) await tx.objectStore(name).clear();
  if (language) await tx.objectStore("meta").put(language, "language");
  await tx.done;
}

async function dropTicket(tx, id) {
  await tx.objectStore("tickets").delete(id);
  const blobs = tx.objectStore("blobs");
  for (const stored of await blobs.index("ticket").getAll(id)) {
    if (stored.uploaded) await blobs.delete(stored.hash);
  }
}

async function pruneOutcomes(store) {
  let excess = (await store.count()) - MAX_OUTCOMES;
  let cursor = await store.openCursor();
  while (excess > 0 && cursor) {
    if (cursor.value.read || !cursor.value.attention) {
      await cursor.delete();
      excess -= 1;
    }
    cursor = await cursor.continue();
  }
}
