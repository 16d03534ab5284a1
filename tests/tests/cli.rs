//! The command line: `estate-sync add-user` reads the password from stdin
//! and stores the user where a server started on the same directory finds it.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Options, TestServer, run_add_user};
use reqwest::StatusCode;
use sync_protocol::{LoginRequest, Role, TicketPage};

/// Run `estate-sync --data-dir DIR add-user …` for estate E02 with `stdin` as its input.
fn add_user(data_dir: &Path, username: &str, role: &str, stdin: &str) -> Output {
    run_add_user(data_dir, username, role, "E02", "运维 孙丽 Sun Li", stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_added_on_the_command_line_can_log_in_once_the_server_runs_on_that_directory() {
    let data_dir = tempfile::tempdir().unwrap();
    let added = add_user(
        data_dir.path(),
        "sunli",
        "dispatcher",
        "correct horse battery staple\n",
    );
    assert!(
        added.status.success(),
        "add-user failed: {}",
        text(&added.stderr)
    );
    assert!(
        text(&added.stdout).contains("user sunli (dispatcher) saved"),
        "{}",
        text(&added.stdout)
    );

    let server = TestServer::start_with(
        data_dir,
        Options {
            demo: false,
            ..Options::default()
        },
    );
    // The newline that ended the input is not part of the password.
    let login = server
        .login_as("sunli", "correct horse battery staple")
        .await;
    assert_eq!(login.user.as_str(), "sunli");
    assert_eq!(login.role, Role::Dispatcher);
    assert_eq!(login.estate.as_str(), "E02");
    assert_eq!(login.token_type, "Bearer");
    let page: TicketPage = server.get("/api/v1/tickets", Some(&login.token)).await.ok();
    assert!(page.tickets.is_empty(), "a new estate has no tickets yet");

    let wrong = LoginRequest {
        username: "sunli".to_owned(),
        password: "correct horse battery staple\n".to_owned(),
        device_id: None,
    };
    server
        .post_json("/api/v1/auth/login", None, &wrong)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_shorter_than_eight_characters_is_refused_and_no_user_is_stored() {
    let data_dir = tempfile::tempdir().unwrap();
    let refused = add_user(data_dir.path(), "shorty", "technician", "1234567\n");
    assert!(
        !refused.status.success(),
        "a 7-character password is refused"
    );
    assert!(
        text(&refused.stderr).contains("at least 8"),
        "the refusal says why: {}",
        text(&refused.stderr)
    );

    let server = TestServer::start_with(
        data_dir,
        Options {
            demo: false,
            ..Options::default()
        },
    );
    let request = LoginRequest {
        username: "shorty".to_owned(),
        password: "1234567".to_owned(),
        device_id: None,
    };
    server
        .post_json("/api/v1/auth/login", None, &request)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[test]
fn an_unknown_role_is_refused_with_a_non_zero_exit() {
    let data_dir = tempfile::tempdir().unwrap();
    let refused = add_user(data_dir.path(), "boss", "admin", "a long enough password\n");
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("unknown role"),
        "{}",
        text(&refused.stderr)
    );
}
