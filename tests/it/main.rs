//! Integration tests: one binary, each module drives the real `itsmd` daemon over HTTP.

mod support;

mod cli;
mod intake;
mod lifecycle;
