//! Integration tests: one binary, each module drives the real `itsmd` daemon over HTTP.

mod support;

mod alertmanager;
mod backup;
mod change_authority;
mod changes;
mod cli;
mod cluster;
mod concurrency;
mod console;
mod crash;
mod expiry;
mod formats;
mod guard;
mod hostile;
mod intake;
mod isolation;
mod lifecycle;
mod mail;
mod mail_out;
mod observe;
mod policies;
mod postgres;
mod quiet;
mod readme;
mod receiver;
mod reload;
mod rule_view;
mod rules;
mod rules2;
mod search;
mod sla;
mod ticket_cli;
mod tickets;
mod tls;
mod vendors;
