//! The `estate-sync` command line: run the server, or manage its built-in users.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Duration;

use crate::app::Application;
use crate::clock::{Clock, ShiftedClock};
use crate::config::Config;
use crate::demo;
use crate::store::{Changes, Store};
use crate::users::new_user;
use clap::{Parser, Subcommand};
use sync_protocol::{EstateId, Role, UserId};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "estate-sync",
    version,
    about = "Sync server for field technicians' handhelds"
)]
struct Cli {
    /// A TOML configuration file; ESTATE_SYNC_* variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The sled data directory.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the server.
    Serve {
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Seed the demo estate (once) and allow a generated JWT secret.
        #[arg(long)]
        demo: bool,
        /// Run the server's clock this many minutes ahead of (or, negative,
        /// behind) the machine's: deadlines, history and sync times follow
        /// it; login tokens keep the machine's clock.
        #[arg(
            long,
            env = "ESTATE_SYNC_CLOCK_SHIFT_MINUTES",
            default_value_t = 0,
            allow_negative_numbers = true
        )]
        clock_shift_minutes: i64,
        /// Serve HTTPS with a certificate made for this machine (localhost,
        /// its LAN address and any --tls-name), signed by a local authority
        /// kept in the data directory (`tls/ca.pem`, which phones install):
        /// a LAN trial of the technicians' app without a reverse proxy.
        #[arg(long, conflicts_with = "tls_cert")]
        self_signed_tls: bool,
        /// Another name or address the trial certificate covers; repeatable.
        #[arg(long = "tls-name", requires = "self_signed_tls")]
        tls_names: Vec<String>,
        /// Serve HTTPS with this certificate chain (PEM); with --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Add (or replace) a built-in user with the server stopped, e.g. the
    /// first administrator; the password is read from stdin. With the server
    /// running, administrators use the admin API. Replacing a user ends
    /// their sessions.
    AddUser {
        #[arg(long)]
        username: String,
        /// One of: customer_service_agent, customer_service_specialist,
        /// customer_service_manager, dispatcher, technician,
        /// department_manager, environment_manager, supervisor,
        /// administrator.
        #[arg(long)]
        role: String,
        #[arg(long)]
        estate: String,
        #[arg(long)]
        name: String,
        /// Replace a technician with another role or estate even though they
        /// still hold open tickets or have changes waiting on a handheld
        /// (those changes will be refused).
        #[arg(long)]
        force: bool,
    },
}

/// Parse the arguments and run; the binary's whole `main`.
pub fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    match cli.command {
        Commands::Serve {
            listen,
            demo,
            clock_shift_minutes,
            self_signed_tls,
            tls_names,
            tls_cert,
            tls_key,
        } => {
            if let Some(listen) = listen {
                config.listen = listen;
            }
            if tls_cert.is_some() {
                config.tls.cert = tls_cert;
                config.tls.key = tls_key;
            }
            if demo {
                let estate = EstateId::parse(demo::DEMO_ESTATE).expect("a valid estate");
                config.calendars = config
                    .calendars
                    .or_for_estate(estate, demo::demo_calendar());
            }
            if demo && config.auth.jwt_secret.is_empty() {
                config.auth.jwt_secret = crate::auth::random_secret();
                tracing::warn!(
                    "demo mode: using a generated JWT secret; tokens end with the process"
                );
            }
            config.validate()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let shift = Duration::try_minutes(clock_shift_minutes)
                .ok_or("--clock-shift-minutes is out of range")?;
            if !shift.is_zero() {
                tracing::warn!(
                    clock_shift_minutes,
                    "the server's clock is shifted from the machine's"
                );
            }
            let tls = if self_signed_tls {
                let names = crate::tls::trial_names(&tls_names);
                let files = crate::tls::self_signed(&config.data_dir, &names)?;
                println!(
                    "HTTPS with a trial certificate for {}; phones install {}",
                    names.join(", "),
                    config.data_dir.join("tls/ca.pem").display()
                );
                Some(crate::tls::server_config(&files)?)
            } else {
                match (&config.tls.cert, &config.tls.key) {
                    (Some(cert), Some(key)) => {
                        Some(crate::tls::server_config(&crate::tls::CertificateFiles {
                            cert: cert.clone(),
                            key: key.clone(),
                        })?)
                    }
                    _ => None,
                }
            };
            let clock = Arc::new(ShiftedClock::new(shift));
            runtime.block_on(serve(config, demo, clock, tls))
        }
        Commands::AddUser {
            username,
            role,
            estate,
            name,
            force,
        } => {
            let role = Role::parse(&role).ok_or_else(|| format!("unknown role {role:?}"))?;
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let mut user = new_user(
                UserId::parse(&username)?,
                role,
                EstateId::parse(&estate)?,
                &name,
                password.trim_end_matches(['\r', '\n']),
            )?;
            let store = Store::open(&config.data_dir)?;
            // A replaced user's tokens name the old generation: they stop working.
            if let Some(old) = store.user(&user.id)? {
                let moved = old.role != user.role || old.estate != user.estate;
                if old.role == Role::Technician && moved && !force {
                    let work = store.open_work(&old)?;
                    if !work.is_empty() {
                        return Err(format!(
                            "{username} still holds {} open tickets and has {} handhelds with changes to upload: reassign the tickets and let the handhelds sync first, or pass --force",
                            work.held_tickets, work.devices_with_pending_changes
                        )
                        .into());
                    }
                }
                user.generation = old.generation + 1;
            }
            let mut changes = Changes::default();
            changes.put_user(&user);
            store.apply(changes)?;
            store.flush()?;
            println!("user {username} ({}) saved", role.as_str());
            Ok(())
        }
    }
}

async fn serve(
    config: Config,
    demo: bool,
    clock: Arc<dyn Clock>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(), Box<dyn std::error::Error>> {
    raise_open_file_limit(config.limits.max_connections);
    let mut app = Application::build(config.clone(), clock).await?;
    let address = app.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(tls) = tls {
        app = app.with_tls(tls);
    }
    if demo {
        demo::seed(app.store(), app.writer()).await?;
        print_demo_banner(scheme, address);
    }
    tracing::info!(%address, scheme, data_dir = %config.data_dir.display(), "listening");
    // The address line is machine-readable so that tests can find a port-0 server.
    println!("listening on {scheme}://{address}");
    // In-flight requests end within the request timeout and the writer's
    // last flush within its bound: later than both, something is stuck.
    let stop_within = std::time::Duration::from_millis(config.limits.request_timeout_ms)
        .saturating_add(config.limits.flush_timeout());
    app.run_until_stopped(shutdown_signal(stop_within)).await?;
    Ok(())
}

/// Every connection takes a file descriptor: raise the soft limit to the
/// hard one, and say so when even that is below the connection cap.
fn raise_open_file_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::info!(open_files = limit, "open-file limit");
            // Descriptors besides connections: the store's files, the listener, logs.
            const RESERVED: u64 = 64;
            if limit < max_connections as u64 + RESERVED {
                tracing::warn!(
                    open_files = limit,
                    max_connections,
                    "the open-file limit is below the connection cap; lower limits.max_connections or raise the hard limit"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
}

fn print_demo_banner(scheme: &str, address: SocketAddr) {
    println!(
        "Demo estate {} is ready. Users (password: {}):",
        demo::DEMO_ESTATE,
        demo::DEMO_PASSWORD
    );
    for (login, role, name) in demo::DEMO_USERS {
        println!("  {login:<12} {:<28} {name}", role.as_str());
    }
    println!("Technicians' app (log in as li or zhang): {scheme}://{address}/app");
    println!("Supervisors' dashboard (zhuguan): {scheme}://{address}/dashboard");
    println!("Get a token:");
    println!(
        "  curl -s -X POST {scheme}://{address}/api/v1/auth/login -H 'content-type: application/json' \\\n    -d '{{\"username\":\"diaodu\",\"password\":\"{}\"}}'",
        demo::DEMO_PASSWORD
    );
    println!("API description: {scheme}://{address}/api/v1/openapi.json");
}

/// Wait for SIGINT or SIGTERM; from then on the process has `stop_within`
/// to stop cleanly.
async fn shutdown_signal(stop_within: std::time::Duration) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
    exit_unless_stopped_within(stop_within);
}

/// End the process after `deadline` unless it has stopped by then: a request
/// or the writer stuck inside the storage engine (a full disk) must not keep
/// the process, and with it the store's lock, for ever.
fn exit_unless_stopped_within(deadline: std::time::Duration) {
    let deadline_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
    let started = std::thread::Builder::new()
        .name("shutdown-deadline".to_owned())
        .spawn(move || {
            std::thread::sleep(deadline);
            tracing::error!(
                deadline_ms,
                "the server did not stop in time (stuck in the storage engine?); exiting without a clean stop"
            );
            std::process::exit(1);
        });
    if let Err(error) = started {
        tracing::error!(%error, "the shutdown deadline could not start");
    }
}
