//! `POST /v2/enqueue` bodies (PagerDuty Events v2), through the served decoder.
//! The invariants checked are in `itsmd::invariants`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| itsmd::invariants::pagerduty(data));
