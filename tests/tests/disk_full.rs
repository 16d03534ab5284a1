//! Honest failure on a full disk: the server on a small tmpfs, filled through
//! the API by a technician's pushes and signature uploads, stops taking
//! writes and says so (`/healthz` 503), acknowledges nothing it has not made
//! durable, ends on SIGTERM, and once space is freed starts again with every
//! acknowledged write.
//!
//! Mounting needs root, so these tests run only with the `disk-full` feature
//! (`.ci/run`, which runs as root:
//! `cargo test -p blackbox-tests --features disk-full --test disk_full`).

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Handheld, Options, Response, TestServer, note, paid_result, push_request, signature};
use reqwest::StatusCode;
use sync_protocol::{
    DeviceMutation, DeviceOp, MutationOutcome, Outcome, PushResponse, Sha256Hex, Ticket, Verdict,
};
use tempfile::TempDir;

/// The flush bound the server runs with here: short, so that a flush stuck
/// in the storage engine is given up on quickly.
const FLUSH_TIMEOUT_MS: &str = "2000";
const REQUEST_TIMEOUT_MS: &str = "10000";
/// SIGTERM must end the server within this, stuck storage or not (its own
/// deadline is the request timeout plus the flush bound: 12 s here).
const STOP_WITHIN: Duration = Duration::from_secs(20);
/// Free space left for the server to fill: a dozen signature uploads.
const ROOM_BYTES: u64 = 3 * 1024 * 1024;
const SIGNATURE_BYTES: usize = 256 * 1024;
/// More rounds than the room can take.
const MAX_ROUNDS: usize = 200;

/// A tmpfs of `size` mounted on a fresh directory; unmounted when dropped.
struct Tmpfs {
    mount_point: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let mount_point = tempfile::tempdir().expect("a temporary directory");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(mount_point.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (the disk-full feature is for CI, which runs as root)"
        );
        Self { mount_point }
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(self.mount_point.path())
            .status();
    }
}

/// A file that takes up the space of the file system it is on.
struct Filler {
    path: PathBuf,
}

impl Filler {
    /// Fill the file system holding `dir`, then give `room_bytes` back.
    fn leaving(dir: &Path, room_bytes: u64) -> Self {
        let filler = Self {
            path: dir.join("filler"),
        };
        let len = filler.grow_until_full();
        let file = OpenOptions::new().write(true).open(&filler.path).unwrap();
        file.set_len(len.saturating_sub(room_bytes)).unwrap();
        filler
    }

    /// Take up every byte still free; the filler's length.
    fn grow_until_full(&self) -> u64 {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .expect("the filler can be created");
        let chunk = vec![0xA5u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::StorageFull => break,
                Err(error) => panic!("writing the filler: {error}"),
            }
        }
        file.metadata().unwrap().len()
    }

    fn remove(self) {
        std::fs::remove_file(&self.path).expect("the filler can be removed");
    }
}

/// A technician's handheld working on one ticket, and what the server
/// acknowledged of that work while the disk filled up.
struct Technician {
    handheld: Handheld,
    ticket: Ticket,
    pushes: Vec<(Vec<DeviceMutation>, Vec<MutationOutcome>)>,
    signatures: Vec<Vec<u8>>,
}

impl Technician {
    /// Arrive and complete `ticket` (acknowledged), ready for signatures.
    async fn on_site(server: &TestServer, token: &str, device: &str, ticket: Ticket) -> Self {
        let mut handheld = Handheld::new(device);
        let finished = vec![
            handheld.record(&ticket, DeviceOp::RecordArrival { position: None }),
            handheld.record(
                &ticket,
                DeviceOp::Complete {
                    result: paid_result(),
                },
            ),
        ];
        server.push(token, &handheld.id, finished).await;
        Self {
            handheld,
            ticket: server.ticket(token, &ticket.id).await,
            pushes: Vec::new(),
            signatures: Vec::new(),
        }
    }

    /// Work round after round until the server refuses: the refusal.
    async fn work_until_refused(&mut self, server: &TestServer, token: &str) -> Response {
        for n in 0..MAX_ROUNDS {
            if let Err(refused) = self.round(server, token, n).await {
                return refused;
            }
        }
        panic!("the disk did not fill up in {MAX_ROUNDS} rounds");
    }

    /// One round: a note and the owner's signature over the ticket's result
    /// in one push, then the signature image. `Err` with the refusal once
    /// the server stops acknowledging.
    async fn round(&mut self, server: &TestServer, token: &str, n: usize) -> Result<(), Response> {
        let mut image = format!("{} signature strokes {n} ", self.handheld.id).into_bytes();
        image.resize(SIGNATURE_BYTES, b'~');
        let text = format!("round {n}: {}", "检查 ".repeat(200));
        let batch = vec![
            self.handheld.record(&self.ticket, note(&text)),
            self.handheld
                .record(&self.ticket, signature(&image, &paid_result())),
        ];
        let pushed = server
            .push_raw(token, &push_request(&self.handheld.id, batch.clone()))
            .await;
        if pushed.status != StatusCode::OK {
            return Err(pushed);
        }
        let answer: PushResponse = pushed.json();
        for outcome in &answer.outcomes {
            assert!(
                matches!(outcome.outcome, Outcome::Applied(_)),
                "{outcome:?}"
            );
        }
        self.pushes.push((batch, answer.outcomes));
        let uploaded = server.upload_blob(token, &image).await;
        if uploaded.status != StatusCode::OK {
            return Err(uploaded);
        }
        self.signatures.push(image);
        Ok(())
    }

    /// Everything acknowledged is there: each signature downloads whole
    /// for the office, and each push is known (its replay is a duplicate
    /// with the first answer).
    async fn check_all_acknowledged_is_there(&self, server: &TestServer, token: &str) {
        let office = server.login("diaodu").await;
        for image in &self.signatures {
            let hash = Sha256Hex::of(image);
            let downloaded = server
                .get(&format!("/api/v1/blobs/{hash}"), Some(&office))
                .await;
            assert_eq!(downloaded.status, StatusCode::OK, "{downloaded:?}");
            assert!(
                downloaded.body == *image,
                "signature {hash} came back whole"
            );
        }
        for (batch, outcomes) in &self.pushes {
            let replay = server.push(token, &self.handheld.id, batch.clone()).await;
            for (replayed, first) in replay.outcomes.iter().zip(outcomes) {
                let Outcome::Applied(applied) = &first.outcome else {
                    unreachable!("checked when pushed");
                };
                assert_eq!(
                    replayed.outcome,
                    Outcome::Duplicate {
                        first: Verdict::Applied(applied.clone())
                    }
                );
            }
        }
        // (The write that failed may or may not have reached the disk.)
        let stored = server.ticket(&office, &self.ticket.id).await;
        assert!(stored.signatures.len() >= self.pushes.len());
    }
}

/// Fill a small disk through the API with `handhelds` technicians working
/// at once, then check the server's every answer and its recovery.
async fn fill_the_disk_and_recover(handhelds: usize) {
    let tmpfs = Tmpfs::mount("16m");
    let data_dir = tempfile::tempdir_in(tmpfs.path()).expect("a data directory on the tmpfs");
    let options = Options {
        demo: true,
        env: vec![
            ("ESTATE_SYNC_FLUSH_TIMEOUT_MS", FLUSH_TIMEOUT_MS.to_owned()),
            (
                "ESTATE_SYNC_REQUEST_TIMEOUT_MS",
                REQUEST_TIMEOUT_MS.to_owned(),
            ),
        ],
        ..Default::default()
    };
    let mut server = TestServer::start_with(data_dir, options);
    let token = server.login("li").await;
    let tickets = server.tickets_of("li").await;
    assert!(tickets.len() >= handhelds, "li holds a ticket per handheld");
    let mut technicians = Vec::new();
    for (n, ticket) in tickets.into_iter().take(handhelds).enumerate() {
        let device = format!("hh-li-full-{n}");
        technicians.push(Technician::on_site(&server, &token, &device, ticket).await);
    }

    let filler = Filler::leaving(tmpfs.path(), ROOM_BYTES);
    let refusals = join_all(
        technicians
            .iter_mut()
            .map(|technician| technician.work_until_refused(&server, &token)),
    )
    .await;
    for refusal in &refusals {
        // A write that met the full disk failed (its flush failed or did not
        // return), or was refused because an earlier one had.
        assert!(
            [
                StatusCode::INTERNAL_SERVER_ERROR,
                StatusCode::SERVICE_UNAVAILABLE
            ]
            .contains(&refusal.status),
            "{refusal:?}"
        );
    }
    assert!(
        technicians
            .iter()
            .any(|technician| !technician.signatures.is_empty()),
        "the room took some signatures"
    );

    // From then on the server says it cannot write, and refuses writes.
    server
        .get("/healthz", None)
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE, "writer_stopped");
    let first = &mut technicians[0];
    let another = vec![
        first
            .handheld
            .record(&first.ticket, note("after the disk filled")),
    ];
    server
        .push_raw(&token, &push_request(&first.handheld.id, another))
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down");

    // SIGTERM ends it, with a failure status after the storage fault.
    let exit = server
        .terminate(STOP_WITHIN)
        .unwrap_or_else(|| panic!("the server was still running {STOP_WITHIN:?} after SIGTERM"));
    assert!(!exit.success(), "{exit}");

    // Started again on the still full disk, it refuses and says why.
    filler.grow_until_full();
    let refused = server
        .try_start_again()
        .expect_err("no store opens on a full disk");
    assert!(refused.contains("No space left on device"), "{refused}");

    // Once space is free it starts, with everything it acknowledged, and
    // takes writes again.
    filler.remove();
    server.start_again();
    server.get("/healthz", None).await.ok::<serde_json::Value>();
    for technician in &technicians {
        technician
            .check_all_acknowledged_is_there(&server, &token)
            .await;
    }
    let current = server.ticket(&token, &technicians[0].ticket.id).await;
    let mut resumed = Handheld::new("hh-li-after");
    let after = vec![resumed.record(&current, note("space was freed"))];
    let pushed = server.push(&token, &resumed.id, after).await;
    assert!(matches!(pushed.outcomes[0].outcome, Outcome::Applied(_)));
}

/// Await every future, concurrently.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut done = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("ready"))
        .collect()
}

/// One write at a time: sled mostly hangs in the flush that meets the full
/// disk, and the flush bound stops the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_technician_filling_the_disk_gets_honest_refusals_and_keeps_every_acknowledged_write() {
    fill_the_disk_and_recover(1).await;
}

/// Writes committed together: sled mostly fails the write outright, and
/// would then hang in the flush it makes when its handle is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn technicians_filling_the_disk_together_get_honest_refusals_and_keep_every_acknowledged_write()
 {
    fill_the_disk_and_recover(2).await;
}
