//! The tenant host API of API.md section 3 against a real server and
//! database: token endpoints, bearer authentication, `/api/me/`,
//! `/api/tenant/` and the posts resource, with exact statuses and bodies.
//!
//! Every test makes its own tenants, so the tests run in parallel.

#[path = "../common/mod.rs"]
mod common;

mod bearer;
mod me;
mod posts_read;
mod posts_write;
mod support;
mod token_obtain;
mod token_refresh;
