//! The relay load benchmark (`relay-bench`): N simulated calls through one media sidecar
//! pinned to one core, with `openai-sim` in echo mode, every frame timed end to end.
//!
//! - [`load`]: the Twilio side of each call, lean enough for hundreds per core; frame ids
//!   in the audio give round trips, loss, duplicates and misrouting.
//! - [`system`]: the real processes under test, pinned with `taskset`, measured from
//!   `/proc`.
//! - [`floor`]: a trivial echo server, the harness's own floor.
//! - [`bare`]: a bare relay with no control plane, to calibrate against.
//! - [`figures`]: what a run prints.

pub mod bare;
pub mod figures;
pub mod floor;
pub mod load;
pub mod system;
