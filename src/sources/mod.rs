//! Sources: everything that produces events for the engine. A source parses and validates
//! its input into an [`crate::model::EventBody`] and hands it to the engine; it never touches
//! the store itself.

pub mod http;
#[cfg(any(test, feature = "fuzzing"))]
pub mod invariants;
pub mod maildir;
