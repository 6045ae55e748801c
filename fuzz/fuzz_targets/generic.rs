//! `POST /api/v1/events` bodies (itsmd's generic event), through the served decoder.
//! The invariants checked are in `itsmd::invariants`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| itsmd::invariants::generic(data));
