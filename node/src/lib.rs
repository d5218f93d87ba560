//! The rwc node (in progress).
