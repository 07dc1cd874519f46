//! Botora: a multi-tenant HTTP edge for django-tenants style PostgreSQL
//! databases.
//!
//! A request's path through the crate, in order:
//! [`listen`] accepts it (TLS included), [`http`] reads its host,
//! [`tenant`] resolves the tenant, [`route`] picks the handler,
//! [`auth`] checks the token, [`handlers`] do the work on a connection
//! that [`db`] scopes to the tenant's schema. [`config`], [`reload`],
//! [`metrics`], [`admin`] and [`cli`] serve the operators.

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod handlers;
pub mod http;
pub mod listen;
pub mod metrics;
pub mod reload;
pub mod route;
pub mod server;
pub mod tenant;
