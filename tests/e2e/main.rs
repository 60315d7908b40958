//! End-to-end: the real `wasmtpd` binary on 127.0.0.1, driven by real SMTP clients
//! (Python's smtplib, swaks, lettre) and by raw sockets for what clients never send.

mod abuse;
mod auth;
mod capabilities;
mod chunking;
mod ci_script;
mod cli;
mod clients;
mod contract;
mod dns;
mod edits;
mod greylist;
mod http;
mod instances;
mod isolation;
mod languages;
mod limits;
mod lmtp;
mod memory;
mod metrics;
mod plugins;
mod proxy;
mod proxy_protocol;
mod raw;
mod redis_server;
mod reload;
mod rspamd;
mod sandbox;
mod server;
mod shutdown;
mod smuggling;
mod stateless;
mod store;
mod tenant_limits;
mod tenants;
mod tls;
