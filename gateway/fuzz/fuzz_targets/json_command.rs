//! Any request body: the JSON command readers answer or refuse, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let body = body.to_vec().into();
    let _ = edgelimit_gateway::json::parse_command(&body);
    let _ = edgelimit_gateway::json::parse_commands(&body);
});
