//! Switchboard's control plane: the system of record for calls and agents, and the
//! gRPC services in front of it.
//!
//! Layout: `domain` holds the model and its rules; `store` persists it (embedded or
//! MongoDB); `grpc` converts the wire types and serves them; `events` is the bus behind
//! `WatchCallEvents`; `config` reads the environment once. [`serve`] ties them together
//! on already-bound listeners, which is how tests run it on `127.0.0.1:0`.

pub mod domain;
pub mod store;
