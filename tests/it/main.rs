//! Integration tests: one binary, each module drives the real `itsmd` daemon over HTTP.

mod support;

mod alertmanager;
mod backup;
mod cli;
mod formats;
mod guard;
mod intake;
mod lifecycle;
mod mail;
mod observe;
mod reload;
mod ticket_cli;
mod tickets;
