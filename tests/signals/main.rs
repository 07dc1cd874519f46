//! The real `botora` binary under real signals: SIGHUP reloads while HTTPS
//! traffic flows (new certificates, rotated JWT keys), refused files, a
//! storm of SIGHUPs, the metrics read by a Prometheus parser, and SIGTERM.
//!
//! Each test prepares a database of its own with the CLI (`migrate`,
//! `tenant create`, `user create`), runs `botora serve` as a child process
//! and talks to it over the loopback. The child is killed when its guard
//! drops, panics included, and the database is dropped after it.

#[path = "../common/mod.rs"]
mod common;

mod clients;
mod harness;
mod lifecycle;
mod metrics;
mod reloads;
mod site;

use std::time::Duration;

/// The tenant every test serves, its schema, and its user.
const DOMAIN: &str = "blog.test";
const SCHEMA: &str = "blog";
const USERNAME: &str = "writer";
const PASSWORD: &str = "writer-password-1";
/// Longest any wait for the server lasts before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);
