//! The black-box harness: the real `estate-sync` binary on a random loopback
//! port with a temporary data directory, and helpers that speak its HTTP API
//! with the `sync-protocol` wire types (one source of truth for the bodies).
//!
//! # Where the binary comes from
//!
//! Cargo builds a binary for the integration tests of its own package only
//! (`CARGO_BIN_EXE_<name>`), and this package is not the server's. So the
//! first test of every test process runs
//! `cargo build -p server --bin estate-sync --message-format=json` (guarded by
//! a `OnceLock`) and takes the executable's path from cargo's own artifact
//! message. That is robust where guessing `target/debug/estate-sync` is not:
//! it honours `CARGO_TARGET_DIR` and the profile, never runs a stale binary
//! after a server change, and costs a fraction of a second when the build is
//! up to date. (Cargo releases its build lock before it runs tests, so the
//! nested build does not wait on the outer one.) Set `ESTATE_SYNC_BIN` to
//! test a binary built elsewhere instead.
//!
//! Every helper checks what every response must have: the
//! `x-sync-protocol: 1` header, and for errors the one error body
//! ([`ErrorBody`]: `code`, `message`, optional `details`, nothing else).

#![allow(dead_code)] // Each test file uses its own part of the harness.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sync_protocol::{
    Applied, Area, Category, Charge, CompletionRecord, Cursor, DeviceId, DeviceMutation, DeviceOp,
    DeviceReport, DeviceSeq, ErrorBody, EstateId, Intake, LoginRequest, LoginResponse, Material,
    OfficeActionRequest, OfficeOp, Outcome, PROTOCOL_HEADER, PROTOCOL_VERSION, PullRequest,
    PullResponse, PushRequest, PushResponse, Rating, Reporter, Sha256Hex, Source, Ticket, TicketId,
    TicketKind, TicketPage, UserSummary,
};
use tempfile::TempDir;

/// The HS256 secret every test server signs with, so tests can forge tokens.
pub const JWT_SECRET: &str = "blackbox-tests-jwt-secret-0123456789abcdef";
pub const JWT_ISSUER: &str = "estate-sync";
pub const JWT_AUDIENCE: &str = "estate-sync-api";
/// The password of every demo user (server/src/demo.rs).
pub const DEMO_PASSWORD: &str = "demo-password";
pub const DEMO_ESTATE: &str = "E01";

/// How long a server may take to print its readiness line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// No single request of these tests should take longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The readiness line: this, then the server's base URL (http or https).
const READY_PREFIX: &str = "listening on ";

/// The server binary, built once per test process.
pub fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("ESTATE_SYNC_BIN") {
            return PathBuf::from(path);
        }
        build_server_binary()
    })
}

fn build_server_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package lives inside the workspace");
    let mut command = Command::new(cargo);
    command.current_dir(workspace).args([
        "build",
        "--quiet",
        "--package",
        "server",
        "--bin",
        "estate-sync",
        "--message-format=json-render-diagnostics",
    ]);
    // The server in the same profile as the tests (`cargo test --release`).
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "building the server binary failed: {}",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == "estate-sync"
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the estate-sync executable it built")
}

/// How to start a server.
#[derive(Clone, Debug)]
pub struct Options {
    /// Pass `--demo`: seed the demo estate (once per data directory).
    pub demo: bool,
    /// Extra `ESTATE_SYNC_*` settings, e.g. a request timeout.
    pub env: Vec<(&'static str, String)>,
    /// Extra arguments of `serve`, e.g. `--self-signed-tls`.
    pub args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            demo: true,
            env: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// A running `estate-sync serve` on 127.0.0.1:0 over its own data directory.
/// Killed when dropped; the directory goes with it.
pub struct TestServer {
    data_dir: TempDir,
    options: Options,
    process: Option<Child>,
    base_url: String,
    client: reqwest::Client,
    /// Tokens stay valid across restarts: the secret is fixed.
    tokens: Mutex<HashMap<String, String>>,
    /// Where to listen: a random port unless a restart must keep the
    /// address (a browser's service worker belongs to one origin).
    listen: String,
    /// The server's output, kept for failure messages.
    output: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// A demo server on a fresh data directory.
    pub fn start() -> Self {
        Self::start_with(
            tempfile::tempdir().expect("a temporary directory"),
            Options::default(),
        )
    }

    /// A server on `data_dir` (which may already hold data).
    pub fn start_with(data_dir: TempDir, options: Options) -> Self {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("a reqwest client");
        let mut server = Self {
            data_dir,
            options,
            process: None,
            base_url: String::new(),
            client,
            tokens: Mutex::new(HashMap::new()),
            listen: "127.0.0.1:0".to_owned(),
            output: Arc::new(Mutex::new(Vec::new())),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        if let Err(output) = self.try_spawn() {
            panic!(
                "the server did not print its readiness line within {STARTUP_TIMEOUT:?}; it said:\n{output}"
            );
        }
    }

    /// Start the process; if it does not come up, what it said.
    fn try_spawn(&mut self) -> Result<(), String> {
        assert!(self.process.is_none(), "the previous process still runs");
        let said_before = self.output.lock().unwrap().len();
        let mut command = Command::new(server_binary());
        command.arg("--data-dir").arg(self.data_dir.path()).args([
            "serve",
            "--listen",
            &self.listen,
        ]);
        if self.options.demo {
            command.arg("--demo");
        }
        command.args(&self.options.args);
        let mut child = clean_env(&mut command)
            .env("ESTATE_SYNC_JWT_SECRET", JWT_SECRET)
            .env("ESTATE_SYNC_JWT_ISSUER", JWT_ISSUER)
            .env("ESTATE_SYNC_JWT_AUDIENCE", JWT_AUDIENCE)
            .env("RUST_LOG", "warn")
            // Tests log in from one address far faster than people do; the
            // throttle's own tests set their limits.
            .env("ESTATE_SYNC_LOGIN_ATTEMPTS_PER_MINUTE", "100000")
            .envs(self.options.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let (ready, ready_line) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        // Both pipes are drained for the whole life of the process, so the
        // server never blocks on a full pipe.
        spawn_reader(stdout, self.output.clone(), Some(ready));
        let stderr_reader = spawn_reader(stderr, self.output.clone(), None);
        match ready_line.recv_timeout(STARTUP_TIMEOUT) {
            Ok(address) => {
                self.process = Some(child);
                self.base_url = address;
                Ok(())
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // Its last words (the error) may still be in the pipe.
                let _ = stderr_reader.join();
                Err(self.output.lock().unwrap()[said_before..].join("\n"))
            }
        }
    }

    /// Stop the process with SIGKILL: no graceful shutdown, no last flush.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.process.take() {
            // std's `Child::kill` is SIGKILL on unix.
            child.kill().expect("the server can be killed");
            child.wait().expect("the killed server is reaped");
        }
    }

    /// Stop the process with SIGTERM, as a service manager would, and return
    /// whether it exited successfully (within the startup timeout).
    pub fn stop_gracefully(&mut self) -> bool {
        self.terminate(STARTUP_TIMEOUT)
            .is_some_and(|status| status.success())
    }

    /// Send SIGTERM and wait at most `within` for the process to exit: how
    /// it exited, or `None` if it had to be killed.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.process.take()?;
        let signalled = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(signalled.success(), "SIGTERM could not be sent");
        let pid = child.id();
        let (exited, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = exited.send(child.wait());
        });
        match exit.recv_timeout(within) {
            Ok(status) => Some(status.expect("the server is reaped")),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                None
            }
        }
    }

    /// Start the server again on the same data directory (killing it first
    /// if it still runs). It gets a new port.
    pub fn restart(&mut self) {
        self.kill_hard();
        self.spawn();
    }

    /// Let `minutes` pass without sleeping: stop the server gracefully and
    /// start it again with its clock that much further ahead of the
    /// machine's (`--clock-shift-minutes`). Deadlines that fell due meanwhile
    /// are found by the scheduler as it starts, as after a real night off.
    pub fn let_time_pass(&mut self, minutes: i64) {
        const SHIFT: &str = "ESTATE_SYNC_CLOCK_SHIFT_MINUTES";
        let shifted: i64 = self
            .options
            .env
            .iter()
            .find(|(name, _)| *name == SHIFT)
            .map_or(0, |(_, value)| value.parse().expect("a shift in minutes"));
        self.options.env.retain(|(name, _)| *name != SHIFT);
        self.options
            .env
            .push((SHIFT, (shifted + minutes).to_string()));
        assert!(self.stop_gracefully(), "the server stops cleanly");
        self.spawn();
    }

    /// Stop the server gracefully and start it again with `name` set to
    /// `value` (an `ESTATE_SYNC_*` setting), e.g. another signing secret.
    pub fn restart_with(&mut self, name: &'static str, value: &str) {
        self.options.env.retain(|(known, _)| *known != name);
        self.options.env.push((name, value.to_owned()));
        assert!(self.stop_gracefully(), "the server stops cleanly");
        self.spawn();
    }

    /// Start the server again after [`TestServer::stop_gracefully`].
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Start the server again after [`TestServer::stop_gracefully`] on the
    /// address it had, as a real server comes back.
    pub fn start_again_on_the_same_address(&mut self) {
        self.listen = self.address().to_owned();
        self.spawn();
    }

    /// Try to start the server again; if it does not come up, what it said.
    pub fn try_start_again(&mut self) -> Result<(), String> {
        self.try_spawn()
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `host:port` of the running server, for raw TCP.
    pub fn address(&self) -> &str {
        self.base_url
            .split_once("://")
            .map_or(self.base_url.as_str(), |(_, address)| address)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    // ---- HTTP in general -------------------------------------------------

    /// Send a request and read the whole answer; checks the protocol header.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Response {
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("the body arrives").to_vec();
        let response = Response {
            status,
            headers,
            body,
        };
        response.assert_protocol_header();
        response
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.send(with_token(self.client.get(self.url(path)), token))
            .await
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &impl Serialize,
    ) -> Response {
        self.send(with_token(self.client.post(self.url(path)), token).json(body))
            .await
    }

    /// POST a body as it is, declared as JSON: for malformed and odd bodies.
    pub async fn post_raw_json(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> Response {
        let request = with_token(self.client.post(self.url(path)), token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(request).await
    }

    // ---- Sessions --------------------------------------------------------

    /// A bearer token for a user with the demo password; cached.
    pub async fn login(&self, user: &str) -> String {
        if let Some(token) = self.tokens.lock().unwrap().get(user) {
            return token.clone();
        }
        let login = self.login_as(user, DEMO_PASSWORD).await;
        self.tokens
            .lock()
            .unwrap()
            .insert(user.to_owned(), login.token.clone());
        login.token
    }

    /// Forget the cached token of `user` (after their account changed).
    pub fn forget_token(&self, user: &str) {
        self.tokens.lock().unwrap().remove(user);
    }

    /// Add a user with the demo password through the admin API, as the demo
    /// administrator; insists it works.
    pub async fn add_user_by_api(&self, username: &str, role: &str, estate: &str) -> UserSummary {
        let admin = self.login("guanli").await;
        let body = serde_json::json!({
            "username": username,
            "display_name": format!("{username} 测试"),
            "role": role,
            "estate": estate,
            "password": DEMO_PASSWORD,
        });
        let response = self
            .post_json("/api/v1/admin/users", Some(&admin), &body)
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
        response.json()
    }

    /// Change a user through the admin API, as the demo administrator.
    pub async fn change_user(&self, username: &str, change: &serde_json::Value) -> Response {
        let admin = self.login("guanli").await;
        let request = self
            .client
            .patch(self.url(&format!("/api/v1/admin/users/{username}")))
            .bearer_auth(admin)
            .json(change);
        self.send(request).await
    }

    /// End every session of a user through the admin API, as the demo
    /// administrator.
    pub async fn end_sessions(&self, username: &str) -> Response {
        let admin = self.login("guanli").await;
        let path = format!("/api/v1/admin/users/{username}/end-sessions");
        self.post_json(&path, Some(&admin), &serde_json::json!({}))
            .await
    }

    /// Log in with a password; insists it works.
    pub async fn login_as(&self, user: &str, password: &str) -> LoginResponse {
        let request = LoginRequest {
            username: user.to_owned(),
            password: password.to_owned(),
            device_id: None,
        };
        self.post_json("/api/v1/auth/login", None, &request)
            .await
            .ok()
    }

    // ---- Sync ------------------------------------------------------------

    pub async fn pull_raw(&self, token: &str, request: &PullRequest) -> Response {
        self.post_json("/api/v1/sync/pull", Some(token), request)
            .await
    }

    /// One pull page from `cursor`.
    pub async fn pull(&self, token: &str, device: &DeviceId, cursor: Cursor) -> PullResponse {
        self.pull_page(token, device, cursor, None).await
    }

    pub async fn pull_page(
        &self,
        token: &str,
        device: &DeviceId,
        cursor: Cursor,
        limit: Option<u32>,
    ) -> PullResponse {
        let request = PullRequest {
            protocol_version: PROTOCOL_VERSION,
            device: device_report(device),
            cursor,
            limit,
        };
        self.pull_raw(token, &request).await.ok()
    }

    pub async fn push_raw(&self, token: &str, request: &PushRequest) -> Response {
        self.post_json("/api/v1/sync/push", Some(token), request)
            .await
    }

    /// Push mutations; insists on 200 and one outcome per mutation.
    pub async fn push(
        &self,
        token: &str,
        device: &DeviceId,
        mutations: Vec<DeviceMutation>,
    ) -> PushResponse {
        let count = mutations.len();
        let response: PushResponse = self
            .push_raw(token, &push_request(device, mutations))
            .await
            .ok();
        assert_eq!(response.outcomes.len(), count, "one outcome per mutation");
        response
    }

    pub async fn upload_blob(&self, token: &str, bytes: &[u8]) -> Response {
        let hash = Sha256Hex::of(bytes);
        self.upload_blob_as(token, hash.as_str(), bytes.to_vec())
            .await
    }

    /// PUT a body under any hash, for refusals.
    pub async fn upload_blob_as(&self, token: &str, hash: &str, bytes: Vec<u8>) -> Response {
        let request = self
            .client
            .put(self.url(&format!("/api/v1/blobs/{hash}")))
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        self.send(request).await
    }

    // ---- Office ----------------------------------------------------------

    pub async fn create_ticket(&self, token: &str, intake: &Intake) -> Ticket {
        let response = self.post_json("/api/v1/tickets", Some(token), intake).await;
        assert_eq!(response.status, StatusCode::CREATED, "{response:?}");
        response.json()
    }

    pub async fn act_raw(&self, token: &str, ticket: &TicketId, op: OfficeOp) -> Response {
        let request = OfficeActionRequest {
            expected_version: None,
            op,
        };
        let path = format!("/api/v1/tickets/{ticket}/actions");
        self.post_json(&path, Some(token), &request).await
    }

    /// An office action; insists it is accepted and returns the changed ticket.
    pub async fn act(&self, token: &str, ticket: &TicketId, op: OfficeOp) -> Ticket {
        self.act_raw(token, ticket, op).await.ok()
    }

    pub async fn ticket(&self, token: &str, ticket: &TicketId) -> Ticket {
        self.get(&format!("/api/v1/tickets/{ticket}"), Some(token))
            .await
            .ok()
    }

    /// Every ticket the token's holder may list, following the pages.
    pub async fn list_tickets(&self, token: &str) -> Vec<Ticket> {
        let mut tickets = Vec::new();
        let mut after: Option<TicketId> = None;
        loop {
            let path = match &after {
                Some(after) => format!("/api/v1/tickets?limit=2&after={after}"),
                None => "/api/v1/tickets?limit=2".to_owned(),
            };
            let page: TicketPage = self.get(&path, Some(token)).await.ok();
            tickets.extend(page.tickets);
            match page.next_after {
                Some(next) => after = Some(next),
                None => return tickets,
            }
        }
    }

    /// The whole estate as the dispatcher sees it: compare before and after
    /// a refusal to show that nothing changed.
    pub async fn estate_snapshot(&self) -> Vec<Ticket> {
        let token = self.login("diaodu").await;
        self.list_tickets(&token).await
    }

    /// The demo tickets dispatched to `technician`, as the dispatcher sees them.
    pub async fn tickets_of(&self, technician: &str) -> Vec<Ticket> {
        self.estate_snapshot()
            .await
            .into_iter()
            .filter(|ticket| {
                ticket
                    .assigned_technician
                    .as_ref()
                    .is_some_and(|assigned| assigned.as_str() == technician)
            })
            .collect()
    }

    /// `technician` arrives, completes with `result` and has the owner sign
    /// with `rating`, in one push from `handheld`, then uploads the
    /// signature image; the completed ticket. Insists every step applies.
    pub async fn finish_on_site(
        &self,
        technician: &str,
        handheld: &mut Handheld,
        ticket: &Ticket,
        result: CompletionRecord,
        rating: Option<Rating>,
    ) -> Ticket {
        let token = self.login(technician).await;
        let image = format!("signature strokes on {}", ticket.id).into_bytes();
        let signed = DeviceOp::AttachSignature {
            blob: Sha256Hex::of(&image),
            signed_record: result.record_hash(),
            signer_name: "业主 Owner".to_owned(),
            rating,
            strokes: None,
        };
        let mutations = vec![
            handheld.record(ticket, DeviceOp::RecordArrival { position: None }),
            handheld.record(ticket, DeviceOp::Complete { result }),
            handheld.record(ticket, signed),
        ];
        let pushed = self.push(&token, &handheld.id, mutations).await;
        assert!(
            pushed.outcomes.iter().all(|outcome| matches!(
                outcome.outcome,
                Outcome::Applied(Applied { late: None, .. })
            )),
            "{pushed:?}"
        );
        let upload = self.upload_blob(&token, &image).await;
        assert_eq!(upload.status, StatusCode::OK, "{upload:?}");
        self.ticket(&token, &ticket.id).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The command without the caller's `ESTATE_SYNC_*` settings, so that a
/// developer's shell cannot change what the tests see.
pub fn clean_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ESTATE_SYNC_") {
            command.env_remove(name);
        }
    }
    command
}

fn spawn_reader(
    pipe: impl Read + Send + 'static,
    output: Arc<Mutex<Vec<String>>>,
    ready: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(address) = line.strip_prefix(READY_PREFIX)
                && let Some(ready) = &ready
            {
                let _ = ready.send(address.trim().to_owned());
            }
            output.lock().unwrap().push(line);
        }
    })
}

fn with_token(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// A whole HTTP answer.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(2000).collect();
        write!(f, "{} {body}", self.status)
    }
}

impl Response {
    fn assert_protocol_header(&self) {
        let header = self
            .headers
            .get(PROTOCOL_HEADER)
            .and_then(|value| value.to_str().ok());
        assert_eq!(
            header,
            Some(PROTOCOL_VERSION.to_string().as_str()),
            "every response carries {PROTOCOL_HEADER}: {PROTOCOL_VERSION} ({self:?})"
        );
    }

    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("unexpected body ({error}): {self:?}"))
    }

    /// The body of a successful answer.
    pub fn ok<T: DeserializeOwned>(self) -> T {
        assert!(self.status.is_success(), "expected success, got {self:?}");
        self.json()
    }

    /// The error body, insisting on the status, the code and the one error
    /// shape: `code`, `message` and optional `details`, nothing else.
    pub fn error(&self, status: StatusCode, code: &str) -> ErrorBody {
        assert_eq!(self.status, status, "{self:?}");
        let content_type = self
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok());
        assert_eq!(content_type, Some("application/json"), "{self:?}");
        let value: serde_json::Value = self.json();
        let keys: Vec<&str> = value
            .as_object()
            .expect("an error body is an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            keys.iter()
                .all(|key| ["code", "message", "details"].contains(key))
                && keys.contains(&"code")
                && keys.contains(&"message"),
            "an error body has code, message and maybe details, nothing else: {self:?}"
        );
        // ErrorBody denies unknown fields: the same check through the wire type.
        let body: ErrorBody = self.json();
        assert_eq!(body.code, code, "{self:?}");
        assert!(!body.message.is_empty(), "an error says why: {self:?}");
        body
    }
}

// ---- Building bodies ------------------------------------------------------

pub fn device_id(raw: &str) -> DeviceId {
    DeviceId::parse(raw).expect("a valid device id")
}

pub fn ticket_id(raw: &str) -> TicketId {
    TicketId::parse(raw).expect("a valid ticket id")
}

pub fn device_report(device: &DeviceId) -> DeviceReport {
    DeviceReport {
        device_id: device.clone(),
        app_version: "blackbox-tests/1".to_owned(),
        outbox_depth: 0,
        oldest_pending_age_ms: None,
        device_time: Utc::now(),
    }
}

pub fn push_request(device: &DeviceId, mutations: Vec<DeviceMutation>) -> PushRequest {
    PushRequest {
        protocol_version: PROTOCOL_VERSION,
        device: device_report(device),
        mutations,
    }
}

/// A handheld that records mutations offline, numbering them 1, 2, 3, …
pub struct Handheld {
    pub id: DeviceId,
    next_seq: u64,
}

impl Handheld {
    pub fn new(id: &str) -> Self {
        Self {
            id: device_id(id),
            next_seq: 1,
        }
    }

    /// Record an intent on the device's copy of `ticket`.
    pub fn record(&mut self, ticket: &Ticket, op: DeviceOp) -> DeviceMutation {
        self.record_at(ticket, op, Utc::now())
    }

    pub fn record_at(
        &mut self,
        ticket: &Ticket,
        op: DeviceOp,
        recorded_at: DateTime<Utc>,
    ) -> DeviceMutation {
        let mutation = DeviceMutation {
            seq: DeviceSeq(self.next_seq),
            ticket_id: ticket.id.clone(),
            base_version: ticket.version,
            recorded_at,
            op,
        };
        self.next_seq += 1;
        mutation
    }

    pub fn next_seq(&self) -> DeviceSeq {
        DeviceSeq(self.next_seq)
    }
}

pub fn note(text: &str) -> DeviceOp {
    DeviceOp::AddNote {
        text: text.to_owned(),
    }
}

/// R-P6: a paid result with its fee and materials.
pub fn paid_result() -> CompletionRecord {
    CompletionRecord {
        work_done: "replaced the kitchen pipe joint 更换厨房水管接头".to_owned(),
        materials: vec![Material {
            name: "pipe joint DN20 水管接头".to_owned(),
            quantity: "1".to_owned(),
        }],
        charge: Charge::Paid { fee_fen: 3500 },
    }
}

/// R-P6: a free result without materials.
pub fn free_result() -> CompletionRecord {
    CompletionRecord {
        work_done: "reset the breaker 复位空开".to_owned(),
        materials: Vec::new(),
        charge: Charge::Free {},
    }
}

/// R-P7: the owner's signature over `result`, as the blob `image`.
pub fn signature(image: &[u8], result: &CompletionRecord) -> DeviceOp {
    DeviceOp::AttachSignature {
        blob: Sha256Hex::of(image),
        signed_record: result.record_hash(),
        signer_name: "王女士 Ms Wang".to_owned(),
        rating: None,
        strokes: None,
    }
}

/// R-I2: a complete report for the demo estate.
pub fn intake() -> Intake {
    Intake {
        estate: EstateId::parse(DEMO_ESTATE).expect("valid"),
        kind: TicketKind::WorkOrder,
        category: Category::Repair,
        area: Area::PrivateUnit,
        source: Source::Phone,
        reporter: Reporter {
            name: "业主 赵先生 Mr Zhao".to_owned(),
            phone: Some("139 0000 5678".to_owned()),
        },
        location: "9-3-801".to_owned(),
        description: "阳台地漏堵塞 Balcony drain blocked".to_owned(),
        received_at: Utc::now() - chrono::Duration::minutes(2),
        follow_up_of: None,
        booking: None,
    }
}

/// Run `estate-sync --data-dir DIR add-user …` with `stdin` as its input
/// (the password), and return what it printed and how it exited.
pub fn run_add_user(
    data_dir: &Path,
    username: &str,
    role: &str,
    estate: &str,
    name: &str,
    stdin: &str,
) -> std::process::Output {
    run_add_user_with(data_dir, [username, role, estate, name], stdin, &[])
}

/// [`run_add_user`] with more arguments (`--force`).
fn run_add_user_with(
    data_dir: &Path,
    [username, role, estate, name]: [&str; 4],
    stdin: &str,
    more: &[&str],
) -> std::process::Output {
    use std::io::Write;
    let mut command = Command::new(server_binary());
    let mut child = clean_env(&mut command)
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "add-user",
            "--username",
            username,
            "--role",
            role,
            "--estate",
            estate,
            "--name",
            name,
        ])
        .args(more)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let written = child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes());
    // A command that refuses its arguments may exit before reading stdin.
    if let Err(error) = written {
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
    }
    // Dropping stdin above closed it: the command read to the end.
    child.wait_with_output().expect("the command finishes")
}

/// Add a user with the demo password before a server starts on `data_dir`.
pub fn add_user(data_dir: &Path, username: &str, role: &str, estate: &str) {
    add_user_with(data_dir, username, role, estate, &[]);
}

/// [`add_user`] with more arguments of `add-user` (`--force`).
pub fn add_user_with(data_dir: &Path, username: &str, role: &str, estate: &str, more: &[&str]) {
    let output = run_add_user_with(
        data_dir,
        [username, role, estate, "客服 何丽 He Li"],
        &format!("{DEMO_PASSWORD}\n"),
        more,
    );
    assert!(
        output.status.success(),
        "add-user failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
