//! The `handheld` binary: a technician's day on the command line, with the
//! server gone while they work.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::Server;

/// Run `handheld --data-dir DIR [--server URL] ARGS…` with nothing on
/// standard input.
fn handheld(data_dir: &Path, server: Option<&str>, args: &[&str]) -> Output {
    run(data_dir, server, args, Stdio::null())
}

fn run(data_dir: &Path, server: Option<&str>, args: &[&str], stdin: Stdio) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_handheld"));
    command.arg("--data-dir").arg(data_dir);
    if let Some(url) = server {
        command.args(["--server", url]);
    }
    command
        .args(args)
        .env_remove("HANDHELD_DATA_DIR")
        .env_remove("HANDHELD_SERVER")
        .stdin(stdin)
        .output()
        .expect("the handheld binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Run and insist it succeeds; its standard output.
fn ok(data_dir: &Path, server: Option<&str>, args: &[&str]) -> String {
    let output = handheld(data_dir, server, args);
    assert!(
        output.status.success(),
        "handheld {args:?} failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Run and insist it fails with `code`; its standard error.
fn refused(data_dir: &Path, args: &[&str], code: &str) -> String {
    let output = handheld(data_dir, None, args);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let error = stderr(&output);
    assert!(error.contains(&format!("error [{code}]")), "{error}");
    error
}

/// Log in as li with the password on standard input and sync; li's first ticket.
fn logged_in_and_synced(data_dir: &Path, server: &Server) -> String {
    // The password arrives on standard input, as from a pipe.
    let mut password = tempfile::tempfile().unwrap();
    writeln!(password, "{}", common::DEMO_PASSWORD).unwrap();
    password.seek(SeekFrom::Start(0)).unwrap();
    let stdin = Stdio::from(password);
    let login = run(
        data_dir,
        Some(server.url()),
        &["login", "--user", "li"],
        stdin,
    );
    assert!(login.status.success(), "{}", stderr(&login));
    assert!(
        stdout(&login).contains("logged in as li"),
        "{}",
        stdout(&login)
    );
    ok(data_dir, None, &["sync"]);
    let list = ok(data_dir, None, &["list"]);
    assert_eq!(list.lines().count(), 2, "li's two demo tickets: {list}");
    list.split_whitespace()
        .next()
        .expect("a ticket id")
        .to_owned()
}

#[test]
fn the_cli_records_a_whole_job_with_the_server_gone_and_uploads_it_on_the_next_sync() {
    let mut server = Server::start();
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path();
    let ticket = logged_in_and_synced(dir, &server);
    server.stop();

    assert!(ok(dir, None, &["arrive", &ticket]).contains("change #1"));
    ok(
        dir,
        None,
        &["note", &ticket, "阀门锈死 the valve is seized"],
    );
    ok(
        dir,
        None,
        &[
            "complete",
            &ticket,
            "--work",
            "更换厨房水管接头 replaced the kitchen pipe joint",
            "--material",
            "pipe joint DN20 水管接头=1",
            "--material",
            "PTFE tape=2",
            "--fee-fen",
            "3500",
        ],
    );
    let image = dir.join("signature.png");
    std::fs::write(&image, b"\x89PNG strokes of Ms Wang").unwrap();
    let signed = ok(
        dir,
        None,
        &[
            "sign",
            &ticket,
            "--image",
            image.to_str().unwrap(),
            "--signer",
            "王女士",
            "--rating",
            "satisfied",
        ],
    );
    assert!(signed.contains("4 waiting to upload"), "{signed}");

    let list = ok(dir, None, &["list"]);
    assert!(list.contains("已完成 completed"), "the overlay: {list}");
    assert!(list.contains("[4 waiting to upload]"), "{list}");
    let shown = ok(dir, None, &["show", &ticket]);
    assert!(
        shown.contains("on the server: 已派工 dispatched"),
        "{shown}"
    );
    assert!(shown.contains("paid 有偿 ¥35.00"), "{shown}");
    assert_eq!(shown.matches("[waiting to upload]").count(), 4, "{shown}");
    let status = ok(dir, None, &["status"]);
    assert!(status.contains("4 changes waiting to upload"), "{status}");
    assert!(status.contains("oldest       waiting for"), "{status}");

    let offline = refused(dir, &["sync"], "offline");
    assert!(offline.contains("could not be reached"), "{offline}");

    server.start_again();
    let synced = ok(dir, Some(server.url()), &["sync"]);
    assert_eq!(synced.matches("saved on the server").count(), 4, "{synced}");
    assert!(synced.contains("1 images uploaded"), "{synced}");
    let status = ok(dir, None, &["status"]);
    assert!(status.contains("0 changes waiting to upload"), "{status}");
    assert!(!status.contains("oldest"), "{status}");
    let shown = ok(dir, None, &["show", &ticket]);
    assert!(!shown.contains("[waiting to upload]"), "{shown}");
    assert!(shown.contains("已完成 completed"), "{shown}");
}

#[test]
fn the_cli_refuses_what_cannot_be_recorded_and_saves_nothing() {
    let server = Server::start();
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path();
    let ticket = logged_in_and_synced(dir, &server);

    let unpaid = refused(
        dir,
        &[
            "complete",
            &ticket,
            "--work",
            "replaced the lamp holder",
            "--fee-fen",
            "0",
        ],
        "invalid_input",
    );
    assert!(unpaid.contains("有偿服务需填写费用"), "{unpaid}");
    let unsigned = dir.join("signature.png");
    std::fs::write(&unsigned, b"strokes").unwrap();
    refused(
        dir,
        &[
            "sign",
            &ticket,
            "--image",
            unsigned.to_str().unwrap(),
            "--signer",
            "王女士",
        ],
        "nothing_to_sign",
    );
    refused(dir, &["note", &ticket, "   "], "invalid_input");
    refused(dir, &["arrive", "tk99999999"], "ticket_not_found");
    refused(dir, &["arrive", "not/a/ticket"], "invalid_input");
    let no_charge = handheld(dir, None, &["complete", &ticket, "--work", "done"]);
    assert_eq!(
        no_charge.status.code(),
        Some(2),
        "free or paid must be said"
    );

    let status = ok(dir, None, &["status"]);
    assert!(status.contains("0 changes waiting to upload"), "{status}");
}

#[test]
fn the_cli_without_a_login_says_how_to_log_in() {
    let data_dir = tempfile::tempdir().unwrap();
    let error = refused(data_dir.path(), &["sync"], "no_server");
    assert!(error.contains("server"), "{error}");
    let output = handheld(data_dir.path(), Some("http://127.0.0.1:9"), &["sync"]);
    assert!(
        stderr(&output).contains("error [not_logged_in]"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("login --user"),
        "{}",
        stderr(&output)
    );
    assert!(ok(data_dir.path(), None, &["list"]).contains("no tickets"));
}
