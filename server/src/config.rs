//! Configuration: defaults, then an optional TOML file, then `ESTATE_SYNC_*`
//! environment variables, then command-line flags (applied by `main`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::calendars::Calendars;

/// Names the configuration file when `--config` does not.
pub const CONFIG_FILE_VARIABLE: &str = "ESTATE_SYNC_CONFIG";

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub auth: AuthConfig,
    pub limits: Limits,
    /// Each estate's working calendar (`[calendars.estates.E01]`) and the
    /// default one (`[calendars.default]`); file only, checked as it is read.
    pub calendars: Calendars,
    pub supervision: SupervisionConfig,
    /// HTTPS: a certificate chain and its key, PEM (`[tls]`).
    pub tls: TlsConfig,
}

/// Serve HTTPS with this certificate chain and key (PEM files); both or
/// neither. Without them the server speaks plain HTTP (behind a reverse
/// proxy that ends TLS, or on localhost).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// What supervisors see (`/api/v1/supervision`, `/metrics`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisionConfig {
    /// A device is online when its last contact is at most this old.
    pub online_window_minutes: i64,
    /// `/metrics` counts devices whose last contact is older than this.
    pub stale_after_minutes: i64,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self {
            online_window_minutes: sync_protocol::supervision::DEFAULT_ONLINE_WINDOW_MINUTES,
            stale_after_minutes: 30,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret, at least 32 bytes. Required outside demo mode.
    pub jwt_secret: String,
    pub issuer: String,
    pub audience: String,
    /// Lifetime of an access token; clients refresh it with their refresh token.
    pub token_ttl_minutes: i64,
    /// A refresh token not used for this long ends its session.
    pub refresh_ttl_days: i64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest JSON request body.
    pub max_body_bytes: usize,
    pub request_timeout_ms: u64,
    /// Requests served at once across the server; more wait, within the timeout.
    pub max_concurrent_requests: usize,
    /// Writes waiting for the group-commit writer; more wait in line.
    pub write_queue: usize,
    /// Threads that hash and check passwords, one at a time each (argon2
    /// takes about 19 MiB per check).
    pub password_workers: usize,
    /// Password checks waiting for a worker; more are refused with 429.
    pub password_queue: usize,
    /// Login and refresh attempts per minute from one client address.
    pub login_attempts_per_minute: u32,
    /// Wrong passwords in a row before a username has to wait between attempts.
    pub login_free_failures: u32,
    /// Open connections at once; more are answered 429 and closed.
    pub max_connections: usize,
    /// Open connections at once from one client address.
    pub max_connections_per_address: usize,
    /// How long a connection may take to send a request's headers, and how
    /// long an idle keep-alive connection is kept waiting for the next one.
    pub header_read_timeout_ms: u64,
    /// Take the client address from the last `X-Forwarded-For` entry (only
    /// behind a reverse proxy that sets it).
    pub trust_forwarded_for: bool,
    /// Handhelds one technician keeps; a new one retires the longest idle
    /// of the others that has nothing waiting to upload.
    pub max_devices_per_user: usize,
    /// A flush that has not returned after this long has failed: the writer
    /// stops, as after a failed flush (`crate::flush_watchdog`).
    pub flush_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            auth: AuthConfig::default(),
            limits: Limits::default(),
            calendars: Calendars::default(),
            supervision: SupervisionConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: String::new(),
            issuer: "estate-sync".to_owned(),
            audience: "estate-sync-api".to_owned(),
            token_ttl_minutes: 15,
            refresh_ttl_days: 30,
        }
    }
}

impl Limits {
    /// The first limit set to 0, which no request could ever pass.
    fn zero_limit(&self) -> Option<&'static str> {
        let limits = [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("request_timeout_ms", self.request_timeout_ms),
            (
                "max_concurrent_requests",
                self.max_concurrent_requests as u64,
            ),
            ("write_queue", self.write_queue as u64),
            ("password_workers", self.password_workers as u64),
            ("password_queue", self.password_queue as u64),
            (
                "login_attempts_per_minute",
                u64::from(self.login_attempts_per_minute),
            ),
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("max_devices_per_user", self.max_devices_per_user as u64),
            ("flush_timeout_ms", self.flush_timeout_ms),
        ];
        limits
            .into_iter()
            .find(|(_, value)| *value == 0)
            .map(|(name, _)| name)
    }

    pub fn flush_timeout(&self) -> Duration {
        Duration::from_millis(self.flush_timeout_ms)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            request_timeout_ms: 30_000,
            max_concurrent_requests: 1024,
            write_queue: 4096,
            password_workers: 2,
            password_queue: 32,
            login_attempts_per_minute: 30,
            login_free_failures: 5,
            max_connections: 4096,
            max_connections_per_address: 256,
            header_read_timeout_ms: 20_000,
            trust_forwarded_for: false,
            max_devices_per_user: 4,
            flush_timeout_ms: crate::writer::DEFAULT_FLUSH_TIMEOUT.as_millis() as u64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("environment variable {name}: {reason}")]
    Env { name: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, overlaid by the file (if any: `file`, else the one
    /// [`CONFIG_FILE_VARIABLE`] names), overlaid by the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let named = std::env::var_os(CONFIG_FILE_VARIABLE).map(PathBuf::from);
        let mut config = match file.or(named.as_deref()) {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source,
                })?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(name: &str, raw: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            raw.parse().map_err(|e: T::Err| ConfigError::Env {
                name: name.to_owned(),
                reason: e.to_string(),
            })
        }
        let prefix = "ESTATE_SYNC_";
        let get = |suffix: &str| {
            var(&format!("{prefix}{suffix}")).map(|v| (format!("{prefix}{suffix}"), v))
        };
        if let Some((name, v)) = get("LISTEN") {
            self.listen = parsed(&name, v)?;
        }
        if let Some((_, v)) = get("DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some((_, v)) = get("JWT_SECRET") {
            self.auth.jwt_secret = v;
        }
        if let Some((_, v)) = get("JWT_ISSUER") {
            self.auth.issuer = v;
        }
        if let Some((_, v)) = get("JWT_AUDIENCE") {
            self.auth.audience = v;
        }
        if let Some((name, v)) = get("TOKEN_TTL_MINUTES") {
            self.auth.token_ttl_minutes = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("MAX_BODY_BYTES") {
            self.limits.max_body_bytes = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("REQUEST_TIMEOUT_MS") {
            self.limits.request_timeout_ms = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("MAX_CONCURRENT_REQUESTS") {
            self.limits.max_concurrent_requests = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("WRITE_QUEUE") {
            self.limits.write_queue = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("REFRESH_TTL_DAYS") {
            self.auth.refresh_ttl_days = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("PASSWORD_WORKERS") {
            self.limits.password_workers = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("PASSWORD_QUEUE") {
            self.limits.password_queue = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("LOGIN_ATTEMPTS_PER_MINUTE") {
            self.limits.login_attempts_per_minute = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("LOGIN_FREE_FAILURES") {
            self.limits.login_free_failures = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("MAX_CONNECTIONS") {
            self.limits.max_connections = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("MAX_CONNECTIONS_PER_ADDRESS") {
            self.limits.max_connections_per_address = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("HEADER_READ_TIMEOUT_MS") {
            self.limits.header_read_timeout_ms = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("TRUST_FORWARDED_FOR") {
            self.limits.trust_forwarded_for = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("MAX_DEVICES_PER_USER") {
            self.limits.max_devices_per_user = parsed(&name, v)?;
        }
        if let Some((name, v)) = get("FLUSH_TIMEOUT_MS") {
            self.limits.flush_timeout_ms = parsed(&name, v)?;
        }
        if let Some((_, v)) = get("TLS_CERT") {
            self.tls.cert = Some(PathBuf::from(v));
        }
        if let Some((_, v)) = get("TLS_KEY") {
            self.tls.key = Some(PathBuf::from(v));
        }
        Ok(())
    }

    /// Refuse configurations that cannot work safely.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::Invalid(
                "tls.cert and tls.key (ESTATE_SYNC_TLS_CERT, ESTATE_SYNC_TLS_KEY) go together"
                    .to_owned(),
            ));
        }
        if self.auth.jwt_secret.len() < 32 {
            return Err(ConfigError::Invalid(
                "auth.jwt_secret (ESTATE_SYNC_JWT_SECRET) must be at least 32 bytes".to_owned(),
            ));
        }
        if self.auth.token_ttl_minutes <= 0 || self.auth.refresh_ttl_days <= 0 {
            return Err(ConfigError::Invalid(
                "auth.token_ttl_minutes and auth.refresh_ttl_days must be positive".to_owned(),
            ));
        }
        if let Some(name) = self.limits.zero_limit() {
            return Err(ConfigError::Invalid(format!(
                "limits.{name} must be positive: a limit of 0 would refuse everything"
            )));
        }
        if self.supervision.online_window_minutes <= 0 || self.supervision.stale_after_minutes <= 0
        {
            return Err(ConfigError::Invalid(
                "supervision.online_window_minutes and stale_after_minutes must be positive"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_the_file_and_defaults() {
        let mut config = Config::default();
        config
            .apply_env(|name| match name {
                "ESTATE_SYNC_LISTEN" => Some("127.0.0.1:9999".to_owned()),
                "ESTATE_SYNC_JWT_SECRET" => Some("s".repeat(32)),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_short_secret_or_a_bad_number_is_refused() {
        let mut config = Config::default();
        assert!(config.validate().is_err());
        let bad = config.apply_env(|name| {
            (name == "ESTATE_SYNC_REQUEST_TIMEOUT_MS").then(|| "soon".to_owned())
        });
        assert!(matches!(bad, Err(ConfigError::Env { .. })));
    }

    #[test]
    fn a_limit_of_zero_is_refused_with_its_name() {
        let mut config = Config::default();
        config.auth.jwt_secret = "s".repeat(32);
        config
            .apply_env(|name| (name == "ESTATE_SYNC_WRITE_QUEUE").then(|| "0".to_owned()))
            .unwrap();
        let refused = config.validate().unwrap_err().to_string();
        assert!(refused.contains("write_queue"), "{refused}");
    }

    #[test]
    fn a_flush_bound_comes_from_the_file_or_the_environment_and_zero_is_refused() {
        let mut config: Config = toml::from_str(
            "[auth]\njwt_secret = \"ssssssssssssssssssssssssssssssss\"\n[limits]\nflush_timeout_ms = 2500\n",
        )
        .unwrap();
        assert_eq!(config.limits.flush_timeout(), Duration::from_millis(2500));
        assert!(config.validate().is_ok());
        config
            .apply_env(|name| (name == "ESTATE_SYNC_FLUSH_TIMEOUT_MS").then(|| "0".to_owned()))
            .unwrap();
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(_))));
        assert_eq!(
            Limits::default().flush_timeout(),
            crate::writer::DEFAULT_FLUSH_TIMEOUT
        );
    }

    #[test]
    fn a_config_file_gives_an_estate_its_own_calendar_and_the_rest_the_default() {
        let config: Config = toml::from_str(
            r#"
            listen = "127.0.0.1:9000"
            [calendars.estates.E07]
            time_zone = "Asia/Urumqi"
            working_hours = { start = "10:00", end = "19:00" }
            public_holidays = ["2026-10-01"]
            extra_working_days = ["2026-10-10"]
            "#,
        )
        .unwrap();
        let estate = |raw| sync_protocol::EstateId::parse(raw).unwrap();
        let own = config.calendars.of(&estate("E07"));
        assert_eq!(own.time_zone().name(), "Asia/Urumqi");
        let national_day = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        assert!(!own.is_working_day(national_day));
        assert_eq!(
            config.calendars.of(&estate("E01")),
            &sync_protocol::WorkingCalendar::asia_shanghai()
        );
    }

    #[test]
    fn a_config_file_with_an_unknown_key_is_refused() {
        let parsed: Result<Config, _> =
            toml::from_str("listen = \"127.0.0.1:1\"\nlisten_port = 3\n");
        assert!(parsed.is_err());
    }
}
