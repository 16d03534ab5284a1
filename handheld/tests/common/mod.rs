//! The real server for the handheld's tests: `estate-sync serve --demo` on
//! 127.0.0.1:0 over a temporary data directory, started the way the
//! black-box tests start it (tests/tests/common/mod.rs explains why the
//! binary comes from a nested `cargo build`), and the office calls the
//! tests make around the handheld.

#![allow(dead_code)] // Each test file uses its own part of the harness.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use handheld::{
    Handheld, HandheldConfig, HandheldError, ManualClock, ReqwestTransport, Transport,
    TransportError, TransportFuture,
};
use sync_protocol::{
    BlobReceipt, DevicePage, Intake, LoginRequest, LoginResponse, OfficeActionRequest, OfficeOp,
    PullRequest, PullResponse, PushRequest, PushResponse, RefreshRequest, Sha256Hex, Ticket,
    TicketId, TicketPage,
};
use tempfile::TempDir;

pub const DEMO_PASSWORD: &str = "demo-password";
const SECRET: &str = "handheld-tests-jwt-secret-0123456789abcdef";
const STARTUP: Duration = Duration::from_secs(60);
const ANNOUNCEMENT: &str = "listening on http://";

/// `estate-sync`, built once per test process in the tests' own profile.
pub fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("ESTATE_SYNC_BIN") {
            return PathBuf::from(path);
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        build.current_dir(&workspace).args([
            "build",
            "--quiet",
            "-p",
            "server",
            "--bin",
            "estate-sync",
            "--message-format=json-render-diagnostics",
        ]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let output = build.stderr(Stdio::inherit()).output().expect("cargo runs");
        assert!(output.status.success(), "the server does not build");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|message| {
                message["target"]["name"] == "estate-sync" && message["executable"].is_string()
            })
            .and_then(|message| message["executable"].as_str().map(PathBuf::from))
            .expect("cargo reports the executable it built")
    })
}

/// A demo server; killed when dropped, its directory removed.
pub struct Server {
    data_dir: TempDir,
    secret: String,
    process: Option<Child>,
    url: String,
}

impl Server {
    pub fn start() -> Self {
        let mut server = Self {
            data_dir: tempfile::tempdir().expect("a temporary directory"),
            secret: SECRET.to_owned(),
            process: None,
            url: String::new(),
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kill the process (SIGKILL), keeping its data: the handheld is offline.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            child.kill().expect("the server can be killed");
            child.wait().expect("the server is reaped");
        }
    }

    /// Start again on the same data; it gets a new port.
    pub fn start_again(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Start again signing tokens with another secret: every token issued
    /// before is refused from now on.
    pub fn start_again_with_new_secret(&mut self) {
        self.secret = format!("{}-rotated", self.secret);
        self.start_again();
    }

    fn spawn(&mut self) {
        let mut command = Command::new(server_binary());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ESTATE_SYNC_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--demo"])
            .env("ESTATE_SYNC_JWT_SECRET", &self.secret)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().expect("piped");
        let (address_sender, address) = mpsc::channel();
        // Read the whole life of the process, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix(ANNOUNCEMENT) {
                    let _ = address_sender.send(address.trim().to_owned());
                }
            }
        });
        self.process = Some(child);
        let address = address
            .recv_timeout(STARTUP)
            .expect("the server announces its address");
        self.url = format!("http://{address}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- The office around the handheld ------------------------------------------

/// The office's side, over plain HTTP with the protocol's types.
pub struct Office {
    url: String,
    client: reqwest::Client,
}

impl Office {
    pub fn of(server: &Server) -> Self {
        Self {
            url: server.url().to_owned(),
            client: reqwest::Client::new(),
        }
    }

    pub async fn token(&self, user: &str) -> String {
        let request = LoginRequest {
            username: user.to_owned(),
            password: DEMO_PASSWORD.to_owned(),
            device_id: None,
        };
        let response: LoginResponse = self
            .send(
                self.client
                    .post(self.path("/api/v1/auth/login"))
                    .json(&request),
            )
            .await;
        response.token
    }

    /// An office action as `user`; insists it is accepted.
    pub async fn act(&self, user: &str, ticket: &TicketId, op: OfficeOp) -> Ticket {
        let request = OfficeActionRequest {
            expected_version: None,
            op,
        };
        let path = self.path(&format!("/api/v1/tickets/{ticket}/actions"));
        let token = self.token(user).await;
        self.send(self.client.post(path).bearer_auth(token).json(&request))
            .await
    }

    /// The ticket as the dispatcher reads it.
    pub async fn ticket(&self, ticket: &TicketId) -> Ticket {
        let token = self.token("diaodu").await;
        let path = self.path(&format!("/api/v1/tickets/{ticket}"));
        self.send(self.client.get(path).bearer_auth(token)).await
    }

    /// The tickets dispatched to `technician`, in id order.
    pub async fn tickets_of(&self, technician: &str) -> Vec<Ticket> {
        self.tickets()
            .await
            .into_iter()
            .filter(|ticket| {
                ticket
                    .assigned_technician
                    .as_ref()
                    .is_some_and(|user| user.as_str() == technician)
            })
            .collect()
    }

    /// Every ticket of the estate as the dispatcher lists them, in id
    /// order, following the pages.
    pub async fn tickets(&self) -> Vec<Ticket> {
        let token = self.token("diaodu").await;
        let mut tickets = Vec::new();
        let mut path = self.path("/api/v1/tickets");
        loop {
            let page: TicketPage = self.send(self.client.get(&path).bearer_auth(&token)).await;
            tickets.extend(page.tickets);
            let Some(after) = page.next_after else {
                return tickets;
            };
            path = self.path(&format!("/api/v1/tickets?after={after}"));
        }
    }

    /// A report recorded by `user` (customer service).
    pub async fn create_ticket(&self, user: &str, intake: &Intake) -> Ticket {
        let token = self.token(user).await;
        let path = self.path("/api/v1/tickets");
        self.send(self.client.post(path).bearer_auth(token).json(intake))
            .await
    }

    pub async fn devices(&self) -> DevicePage {
        let token = self.token("zhuguan").await;
        self.send(
            self.client
                .get(self.path("/api/v1/devices"))
                .bearer_auth(token),
        )
        .await
    }

    /// End every session of `user`, as the demo administrator does.
    pub async fn end_sessions(&self, user: &str) {
        let admin = self.token("guanli").await;
        let _: serde_json::Value = self
            .send(
                self.client
                    .post(self.path(&format!("/api/v1/admin/users/{user}/end-sessions")))
                    .bearer_auth(admin),
            )
            .await;
    }

    pub async fn blob(&self, hash: &Sha256Hex) -> Vec<u8> {
        let token = self.token("diaodu").await;
        let response = self
            .client
            .get(self.path(&format!("/api/v1/blobs/{hash}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("the server answers");
        assert!(response.status().is_success(), "{}", response.status());
        response.bytes().await.expect("the body arrives").to_vec()
    }

    fn path(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    async fn send<T: serde::de::DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> T {
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let body = response.bytes().await.expect("the body arrives");
        assert!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("the answer parses")
    }
}

// ---- A handheld with faults on demand ----------------------------------------

/// The real transport, with the faults technicians live with switched on
/// by the test.
pub struct FaultyNetwork {
    inner: Mutex<Arc<ReqwestTransport>>,
    /// No call gets through.
    pub offline: AtomicBool,
    /// Pushes get no answer without reaching the server; pulls get through.
    pub pushes_lost: AtomicBool,
    /// This many pushes reach the server and are applied, but their answer
    /// is lost on the way back.
    pub push_answers_to_lose: AtomicUsize,
    /// This many image uploads are cut off before they reach the server.
    pub uploads_to_cut: AtomicUsize,
}

impl FaultyNetwork {
    pub fn to(url: &str) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Arc::new(transport(url))),
            offline: AtomicBool::new(false),
            pushes_lost: AtomicBool::new(false),
            push_answers_to_lose: AtomicUsize::new(0),
            uploads_to_cut: AtomicUsize::new(0),
        })
    }

    /// Point at a restarted server (its new port).
    pub fn retarget(&self, url: &str) {
        *self.inner.lock().unwrap() = Arc::new(transport(url));
    }

    fn inner(&self) -> Result<Arc<ReqwestTransport>, TransportError> {
        if self.offline.load(Ordering::SeqCst) {
            return Err(no_signal());
        }
        Ok(self.inner.lock().unwrap().clone())
    }
}

fn transport(url: &str) -> ReqwestTransport {
    ReqwestTransport::new(url, Duration::from_secs(30)).expect("a valid URL")
}

fn no_signal() -> TransportError {
    TransportError::NoAnswer("no signal (test)".to_owned())
}

/// Take one from a counter of faults still to inject.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}

impl Transport for FaultyNetwork {
    fn login<'a>(&'a self, request: &'a LoginRequest) -> TransportFuture<'a, LoginResponse> {
        Box::pin(async move { self.inner()?.login(request).await })
    }

    fn refresh<'a>(&'a self, request: &'a RefreshRequest) -> TransportFuture<'a, LoginResponse> {
        Box::pin(async move { self.inner()?.refresh(request).await })
    }

    fn pull<'a>(
        &'a self,
        token: &'a str,
        request: &'a PullRequest,
    ) -> TransportFuture<'a, PullResponse> {
        Box::pin(async move { self.inner()?.pull(token, request).await })
    }

    fn push<'a>(
        &'a self,
        token: &'a str,
        request: &'a PushRequest,
    ) -> TransportFuture<'a, PushResponse> {
        Box::pin(async move {
            let inner = self.inner()?;
            if self.pushes_lost.load(Ordering::SeqCst) {
                return Err(no_signal());
            }
            let answer = inner.push(token, request).await;
            if answer.is_ok() && take_one(&self.push_answers_to_lose) {
                return Err(TransportError::NoAnswer(
                    "the answer was lost on the way back (test)".to_owned(),
                ));
            }
            answer
        })
    }

    fn put_blob<'a>(
        &'a self,
        token: &'a str,
        hash: &'a Sha256Hex,
        bytes: &'a [u8],
    ) -> TransportFuture<'a, BlobReceipt> {
        Box::pin(async move {
            let inner = self.inner()?;
            if take_one(&self.uploads_to_cut) {
                return Err(no_signal());
            }
            inner.put_blob(token, hash, bytes).await
        })
    }
}

/// A handheld on `data_dir` over `network`, its clock at `clock`.
pub fn handheld_on(
    data_dir: &Path,
    device_id: &str,
    network: &Arc<FaultyNetwork>,
    clock: &Arc<ManualClock>,
) -> Result<Handheld, HandheldError> {
    let mut config = HandheldConfig::new(data_dir.to_string_lossy().into_owned());
    config.device_id = Some(device_id.to_owned());
    Handheld::open_with(config, network.clone(), clock.clone())
}

/// Open a data directory a dropped handheld just used: sled's threads let
/// go of its lock a moment after the drop.
pub fn reopen(
    data_dir: &Path,
    device_id: &str,
    network: &Arc<FaultyNetwork>,
    clock: &Arc<ManualClock>,
) -> Handheld {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match handheld_on(data_dir, device_id, network, clock) {
            Ok(handheld) => return handheld,
            Err(error) if error.code() == "storage" && std::time::Instant::now() < deadline => {
                std::thread::yield_now();
            }
            Err(error) => panic!("{error}"),
        }
    }
}
