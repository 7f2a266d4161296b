//! End-to-end tests: the dev IdP served on 127.0.0.1:0, driven over HTTP the
//! way a relying party and a browser would.
//! One test binary (faster to link); each module is a concern.

mod authorize;
mod authorize_errors;
mod claims;
mod client_credentials;
mod common;
mod config;
mod discovery;
mod graph;
mod keys;
mod logout;
mod refresh;
mod session;
mod token;
