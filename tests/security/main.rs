//! Security checks against a real server: tokens replayed across tenants,
//! forged (`alg: none`, algorithm confusion, hostile `kid`s), expired or
//! not yet valid, or of users who are gone; schema names, SQL and paths
//! that try to reach what they should not; and secrets that must never
//! reach a log line or a response body.

#[path = "../common/mod.rs"]
mod common;

mod names;
mod secrets;
mod support;
mod tokens;
mod users;
mod values;
