//! `POST /api/v2/alerts` bodies (Prometheus), through the served decoder.
//! The invariants checked are in `itsmd::sources::invariants`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| itsmd::sources::invariants::prometheus(data));
