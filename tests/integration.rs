//! Integration tests (filled in by the next commits).
