//! HTTP wire formats, one file each. Each turns a request body into events, tolerating
//! unknown fields and reporting every problem with its field path.

pub mod alertmanager;
pub mod body;
pub mod generic;
pub mod pagerduty;
pub mod pd_change;
pub mod promalert;
pub mod prometheus;
