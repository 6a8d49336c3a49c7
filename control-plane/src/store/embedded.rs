//! Embedded store (placeholder while it is written).
