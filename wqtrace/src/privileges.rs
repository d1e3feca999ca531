//! Privilege checks.
