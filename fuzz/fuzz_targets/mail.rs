//! Raw Maildir messages, through the parser the Maildir reader uses, into a mail event.
//! The invariants checked are in `itsmd::invariants`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| itsmd::invariants::mail(data));
