//! `serve` and the reloading verifier it is built on, driven through
//! the library and the real binary on 127.0.0.1.

#[path = "../common/mod.rs"]
mod common;

mod authz;
mod authz_fleet;
mod bridge_sdk;
mod cluster;
mod consent_browser;
mod fixture;
mod fleet;
mod fleet_usage;
mod harness;
mod http;
mod limits;
mod nginx;
mod oauth;
mod watch;
