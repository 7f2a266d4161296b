//! Integration tests: real dev IdP, real proxy, real upstream, all on loopback.
//! One test binary (faster to link); each module is a concern.

mod adversary;
mod authorization;
mod bearer;
mod check_config;
mod cli;
mod client_auth;
mod conformance;
mod dash;
mod dash_differential;
mod demo;
mod forward_auth;
mod forwarding;
mod hardening;
mod harness;
mod hostile;
mod metrics;
mod paths;
mod redirects;
mod redis_entra;
mod redis_server;
mod restart;
mod scale_out;
mod sessions;
mod signin;
