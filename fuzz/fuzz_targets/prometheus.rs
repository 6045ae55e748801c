//! `POST /api/v2/alerts` bodies (Prometheus), through the served decoder.
//! The invariants checked are in `itsmd::invariants`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| itsmd::invariants::prometheus(data));
