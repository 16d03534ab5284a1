//! Driving Debian's headless Chromium over WebDriver (chromedriver), for
//! the pages' real-browser tests. With the `browser` feature on, a machine
//! without Chromium fails with the command to run: a browser test that
//! skipped itself would pass without ever having run.

#![allow(dead_code)] // Each browser test uses its own part.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::common::DEMO_PASSWORD;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long chromedriver may take to say it listens.
const DRIVER_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a page may take to show what is expected.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn switch_language(browser: &Client, language: &str) {
    browser
        .find(Locator::Css("#language"))
        .await
        .expect("the language switch")
        .select_by_value(language)
        .await
        .unwrap_or_else(|error| panic!("{language} is offered: {error}"));
}

pub async fn log_in(browser: &Client, username: &str) {
    let form = browser
        .form(Locator::Css("#login-form"))
        .await
        .expect("the login form is shown first");
    form.set_by_name("username", username)
        .await
        .expect("a username field");
    form.set_by_name("password", DEMO_PASSWORD)
        .await
        .expect("a password field");
    form.submit().await.expect("the form submits");
}

/// Waits until `condition` (a script returning a boolean) holds.
pub async fn wait_until(browser: &Client, condition: &str) {
    assert!(
        holds_within(browser, condition, PAGE_TIMEOUT).await,
        "after {PAGE_TIMEOUT:?}: {condition}"
    );
}

/// Whether `condition` (a script returning a boolean) comes to hold within
/// `within`, asked every 50 ms.
pub async fn holds_within(browser: &Client, condition: &str, within: Duration) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        let holds = browser
            .execute(condition, Vec::new())
            .await
            .expect("the script runs");
        if holds == json!(true) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Waits until the element `selector` exists and its text contains
/// `expected`. The page is watched with a `MutationObserver`, which answers
/// as soon as the DOM changes, rather than polled.
pub async fn wait_for_text(browser: &Client, selector: &str, expected: &str) {
    const WATCH: &str = r#"
        const [selector, expected, done] = arguments;
        const matches = () => {
            const element = document.querySelector(selector);
            return element !== null && element.textContent.includes(expected);
        };
        if (matches()) { done(true); return; }
        const observer = new MutationObserver(() => {
            if (matches()) { observer.disconnect(); done(true); }
        });
        observer.observe(document.body, { subtree: true, childList: true, characterData: true });
    "#;
    let watched = browser
        .execute_async(WATCH, vec![json!(selector), json!(expected)])
        .await;
    if watched.is_err() {
        let shown = browser
            .execute(
                "const e = document.querySelector(arguments[0]); \
                 return e === null ? '(no such element)' : e.textContent;",
                vec![json!(selector)],
            )
            .await;
        let body = browser
            .execute("return document.body.innerText;", Vec::new())
            .await;
        panic!(
            "after {PAGE_TIMEOUT:?}, {selector} should contain {expected:?}; it shows {shown:?}\n\
             the page: {body:?}"
        );
    }
}

/// What the browser shows, at `width` × `height`, saved as PNG to `path`.
pub async fn save_screenshot(browser: &Client, path: &Path, width: u32, height: u32) {
    browser
        .set_window_size(width, height)
        .await
        .expect("the window resizes");
    let png = browser.screenshot().await.expect("a screenshot");
    std::fs::write(path, png).unwrap_or_else(|error| panic!("writing {path:?}: {error}"));
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package lives inside the workspace")
        .to_path_buf()
}

/// chromedriver on a free loopback port, killed when dropped.
pub struct ChromeDriver {
    process: Child,
    url: String,
    /// A fresh browser profile, removed with the driver.
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    pub fn start() -> Self {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: this test drives Debian's Chromium. Install it as \
                 .ci/run does: `apt-get install -y chromium chromium-driver` (as root)"
            );
        }
        let port = free_port();
        let mut process = Command::new(CHROMEDRIVER)
            .args([
                format!("--port={port}"),
                "--allowed-ips=127.0.0.1".to_owned(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let stdout = process.stdout.take().expect("piped stdout");
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("started successfully") {
                    let _ = ready.send(());
                }
            }
        });
        started
            .recv_timeout(DRIVER_STARTUP_TIMEOUT)
            .expect("chromedriver says it started");
        Self {
            process,
            url: format!("http://127.0.0.1:{port}"),
            profile: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub async fn open_browser(&self) -> Client {
        let mut capabilities = Capabilities::new();
        let arguments = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", self.profile.path().display()),
        ];
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": CHROMIUM, "args": arguments }),
        );
        let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("chromedriver opens a Chromium session");
        browser
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(PAGE_TIMEOUT),
                Some(PAGE_TIMEOUT),
                None,
            ))
            .await
            .expect("the timeouts are set");
        browser
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}
