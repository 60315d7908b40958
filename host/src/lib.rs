//! wasmtpd: a programmable SMTP server. The protocol lives in `wasmtpd-protocol`; this
//! crate does the I/O: listeners, sessions, limits, configuration and message handlers.

pub mod address_range;
pub mod admission;
pub mod auth;
pub mod cli;
pub mod config;
pub mod contexts;
pub mod deliver;
pub mod dns;
pub mod gathering_writer;
pub mod handler;
pub mod hook;
pub mod kv;
pub mod listen_address;
pub mod listener;
pub mod log;
pub mod message_room;
pub mod metrics;
pub mod metrics_http;
pub mod plugin;
pub mod proxy_protocol;
pub mod rate;
pub mod relay;
pub mod reload;
pub mod reply_reader;
pub mod server;
pub mod service;
pub mod session;
pub mod session_stream;
pub mod shared_slot;
pub mod signals;
pub mod spool;
pub mod state_dir;
pub mod tls;
pub mod trace;
pub mod upstream_tls;
