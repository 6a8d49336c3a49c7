//! MongoDB store (placeholder while it is written).
