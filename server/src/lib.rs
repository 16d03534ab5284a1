//! The sync server: thin shells (storage, HTTP, auth, group commit) around
//! the pure `sync-protocol` core.

pub mod app;
pub mod auth;
pub mod calendars;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod execution;
mod flush_watchdog;
pub mod http;
pub mod live;
pub mod metrics;
pub mod reports;
pub mod scheduler;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod tls;
pub mod users;
pub mod writer;
