// The app's service worker: keeps the app's files so that the page opens
// with no network at all. The server fills in the version and the file list
// (server/src/http/technician_app.rs); a new server binary is a new version,
// which replaces the old copy. API calls are never cached: the phone's data
// lives in IndexedDB, written by the page.
"use strict";

const VERSION = "__BUNDLE_VERSION__";
const SHELL = ["__SHELL_FILES__"];
const CACHE = `estate-sync-app-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((path) => new Request(path, { cache: "no-cache" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) =>
        Promise.all(
          names
            .filter((name) => name.startsWith("estate-sync-app-") && name !== CACHE)
            .map((name) => caches.delete(name)),
        ),
      )
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  const path = url.pathname === "/app/" ? "/app" : url.pathname;
  if (!SHELL.includes(path)) return;
  event.respondWith(
    caches.open(CACHE).then(async (cache) => (await cache.match(path)) || fetch(event.request)),
  );
});
