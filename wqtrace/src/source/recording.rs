//! Reading events back from a recording file (see [`crate::recording`]).
