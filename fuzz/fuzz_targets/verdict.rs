#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| attestgate_fuzz::verdict(data));
