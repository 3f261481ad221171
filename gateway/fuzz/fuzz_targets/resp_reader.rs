//! Any bytes from Redis, in any cut: the RESP reader answers a value, asks
//! for more, or refuses, never panics, and never reads past what it has.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, wire)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(wire.len());
    let mut buf = BytesMut::from(&wire[..cut]);
    while let Ok(Some(_)) = edgelimit_gateway::resp::parse(&mut buf) {}
    buf.extend_from_slice(&wire[cut..]);
    while let Ok(Some(_)) = edgelimit_gateway::resp::parse(&mut buf) {}
});
