//! Cross-service tests (see `tests/`).
