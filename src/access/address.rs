//! IP addresses as text, in the forms `std::net` accepts (dotted IPv4
//! without leading zeros; IPv6 with at most one `::` and perhaps an IPv4
//! tail), without linking its generic parser into the WebAssembly module.

/// `(is IPv6, the address's bits)`, or `None` when `text` is no address.
pub(crate) fn parse(text: &str) -> Option<(bool, u128)> {
    let text = text.as_bytes();
    match text.contains(&b':') {
        true => v6(text).map(|bits| (true, bits)),
        false => v4(text).map(|bits| (false, u128::from(bits))),
    }
}

fn v4(text: &[u8]) -> Option<u32> {
    let mut bits = 0u32;
    let mut octets = 0;
    for part in text.split(|&c| c == b'.') {
        let leading_zero = part.len() > 1 && part[0] == b'0';
        if octets == 4 || part.is_empty() || part.len() > 3 || leading_zero {
            return None;
        }
        let mut octet = 0u32;
        for &c in part {
            octet = octet * 10 + u32::from(c.is_ascii_digit().then(|| c - b'0')?);
        }
        if octet > 255 {
            return None;
        }
        bits = bits << 8 | octet;
        octets += 1;
    }
    (octets == 4).then_some(bits)
}

fn v6(text: &[u8]) -> Option<u128> {
    let mut head = [0u16; 8];
    let mut tail = [0u16; 8];
    let (heads, tails) = match text.windows(2).position(|w| w == b"::") {
        None => match groups(text, &mut head, true)? {
            8 => (8, 0),
            _ => return None,
        },
        Some(at) => {
            let heads = groups(&text[..at], &mut head, false)?;
            let tails = groups(&text[at + 2..], &mut tail, true)?;
            // `::` stands for at least one group of zeros.
            if heads + tails > 7 {
                return None;
            }
            (heads, tails)
        }
    };
    let mut all = [0u16; 8];
    all[..heads].copy_from_slice(&head[..heads]);
    all[8 - tails..].copy_from_slice(&tail[..tails]);
    Some(
        all.iter()
            .fold(0, |bits, &group| bits << 16 | u128::from(group)),
    )
}

/// Reads the `:`-separated groups of `text` into `out`; how many. An IPv4
/// address may end the text (as two groups) when `v4_last`.
fn groups(text: &[u8], out: &mut [u16; 8], v4_last: bool) -> Option<usize> {
    if text.is_empty() {
        return Some(0);
    }
    let mut count = 0;
    let mut parts = text.split(|&c| c == b':').peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        if last && v4_last && part.contains(&b'.') {
            let bits = v4(part)?;
            let slots = out.get_mut(count..count + 2)?;
            slots.copy_from_slice(&[(bits >> 16) as u16, bits as u16]);
            return Some(count + 2);
        }
        if part.is_empty() || part.len() > 4 || count == 8 {
            return None;
        }
        let mut group = 0u16;
        for &c in part {
            group = group << 4 | u16::from(char::from(c).to_digit(16)? as u8);
        }
        out[count] = group;
        count += 1;
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use proptest::prelude::*;

    use super::parse;

    /// What the standard library makes of `text`.
    fn std_parse(text: &str) -> Option<(bool, u128)> {
        match text.parse::<IpAddr>().ok()? {
            IpAddr::V4(v4) => Some((false, u128::from(u32::from(v4)))),
            IpAddr::V6(v6) => Some((true, u128::from(v6))),
        }
    }

    #[test]
    fn the_forms_std_accepts_and_refuses() {
        for text in [
            "0.0.0.0",
            "255.255.255.255",
            "1.2.3.04",
            "1.2.3.256",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1::2::3",
            ":::",
            "1:2:3:4:5:6:1.2.3.4",
            "::ffff:192.0.2.1",
            "::192.0.2.1",
            "1.2.3.4::",
            "12345::",
            "fe80::1%eth0",
            "",
            ":",
            "1:",
            ":1",
            "2001:DB8::ABCD",
        ] {
            assert_eq!(parse(text), std_parse(text), "{text:?}");
        }
    }

    fn address_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-fA-F:.]{0,45}",
            "[0-9.]{0,17}",
            "[0-9a-f]{0,4}(:[0-9a-f]{0,4}){0,9}(:[0-9]{1,3}(\\.[0-9]{1,3}){3})?",
            any::<u128>().prop_map(|bits| std::net::Ipv6Addr::from(bits).to_string()),
            any::<u32>().prop_map(|bits| std::net::Ipv4Addr::from(bits).to_string()),
        ]
    }

    proptest! {
        #[test]
        fn parses_as_std_does(text in address_like()) {
            prop_assert_eq!(parse(&text), std_parse(&text), "{:?}", text);
        }
    }
}
