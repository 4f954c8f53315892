//! Interop tests
