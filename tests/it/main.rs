//! Integration tests: one binary, each module drives the real `itsmd` daemon over HTTP.

mod support;

mod alertmanager;
mod cli;
mod formats;
mod intake;
mod lifecycle;
