//! `POST /webhook/alertmanager` bodies (Alertmanager v4 and Grafana), through the served decoder.
//! The invariants checked are in `itsmd::invariants`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| itsmd::invariants::webhook(data));
