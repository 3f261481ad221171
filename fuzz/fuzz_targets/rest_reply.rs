//! Whatever a REST server answers (status, body, how many entries a
//! pipeline expected), the store's readers never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[status_hi, status_lo, entries], body)) = data.split_first_chunk::<3>() else {
        return;
    };
    let status = u16::from_be_bytes([status_hi, status_lo]) % 600;
    let body = String::from_utf8_lossy(body);
    edgelimit::store::fuzzing::read_replies(status, &body, usize::from(entries));
});
