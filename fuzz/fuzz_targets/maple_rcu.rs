//! libFuzzer entry point for [`maple_fuzz::run_maple_rcu`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| maple_fuzz::run_maple_rcu(data));
