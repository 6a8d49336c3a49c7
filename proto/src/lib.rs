//! Switchboard's gRPC contract, `switchboard.v1`, generated from `proto/switchboard/v1`.
//!
//! This crate holds generated code only: the messages, the client and server stubs of
//! every service, and [`FILE_DESCRIPTOR_SET`] for server reflection. The generated files
//! in `src/gen/` are checked in so nobody needs `protoc`; `tests/bootstrap.rs`
//! regenerates them with protox and fails when they differ from the `.proto` files.
//!
//! The services convert these types to their own domain types at their edges (see
//! `switchboard-control-plane`'s `grpc::convert`); nothing here carries behaviour.

/// The `switchboard.v1` package.
pub mod v1 {
    #![allow(missing_docs, unreachable_pub, missing_debug_implementations)]
    #![allow(clippy::all, clippy::pedantic)]
    include!("gen/switchboard.v1.rs");
}

/// Encoded `FileDescriptorSet` of every `switchboard.v1` file (and the well-known types
/// they import), for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/switchboard.v1.bin");
