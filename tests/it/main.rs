//! Integration tests: one binary, each module drives the real `itsmd` daemon over HTTP.

mod support;

mod alertmanager;
mod backup;
mod cli;
mod crash;
mod formats;
mod guard;
mod intake;
mod isolation;
mod lifecycle;
mod mail;
mod observe;
mod quiet;
mod receiver;
mod reload;
mod rules;
mod rules2;
mod sla;
mod ticket_cli;
mod tickets;
mod vendors;
