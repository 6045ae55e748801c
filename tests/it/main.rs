//! Integration tests: one binary, each module drives the real `itsmd` daemon over HTTP.

mod support;

mod cli;
mod guard;
mod intake;
mod lifecycle;
mod observe;
mod ticket_cli;
mod tickets;
