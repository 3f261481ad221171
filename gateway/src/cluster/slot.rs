//! Hash slots: which slot a key, and a command, belongs to.

use bytes::Bytes;

use crate::policy::{lower_name, sub_name, CommandTable};
use crate::resp::Value;

pub const SLOTS: usize = 16384;

/// CRC16/XMODEM, the checksum Redis Cluster hashes keys with.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Hash slot of a key, honouring `{hash tags}`.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS as u16
}

/// The keys of a command, as far as the command table tells.
fn keys<'a>(args: &'a [Bytes], table: &CommandTable) -> Vec<&'a Bytes> {
    let name = lower_name(args);
    match name.as_str() {
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => {
            let n = args
                .get(2)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            args.iter().skip(3).take(n).collect()
        }
        _ => {
            let sub = sub_name(&name, args);
            let Some(spec) = table.key_spec(&name, sub.as_deref()) else {
                return vec![];
            };
            if spec.first <= 0 {
                return vec![];
            }
            let last = if spec.last < 0 {
                args.len() as i64 + spec.last
            } else {
                spec.last
            };
            let step = spec.step.max(1) as usize;
            (spec.first..=last.min(args.len() as i64 - 1))
                .step_by(step)
                .filter_map(|i| args.get(i as usize))
                .collect()
        }
    }
}

pub fn crossslot() -> Value {
    Value::Error(Bytes::from_static(
        b"CROSSSLOT Keys in request don't hash to the same slot",
    ))
}

/// The one slot of a command: `Ok(None)` when it has no keys.
pub fn command_slot(args: &[Bytes], table: &CommandTable) -> Result<Option<u16>, Value> {
    let mut found = None;
    for k in keys(args, table) {
        let s = slot(k);
        match found {
            None => found = Some(s),
            Some(f) if f != s => return Err(crossslot()),
            _ => {}
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }
}
