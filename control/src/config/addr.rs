//! Address lists as Poptop writes them (`remoteip 192.168.0.234-238,192.168.0.245`) and as
//! the native file does (`"10.0.0.10-10.0.0.200"`).
//!
//! Poptop's rules (pptpd.c `processIPStr`): items are separated by commas; an item with
//! exactly one `-` and three dots is a range over the octet holding the dash
//! (`192.168.0.234-238` is .234 to .238; `192.168-169.1.5` is 192.168.1.5 and
//! 192.169.1.5); anything else is one address. Where we differ: pptpd resolves host names
//! and accepts inet_addr's short forms (`10.1`); we take dotted quads only, and an empty or
//! reversed range is an error (pptpd silently yields no address). The native file also
//! takes a range between two full addresses (`10.0.0.10-10.0.1.20`).

use core::net::Ipv4Addr;

use super::Problem;
use crate::pool::MAX_POOL_SIZE;

/// Parses a comma-separated list of addresses and ranges into addresses, in order.
/// Expansion stops with an error past [`MAX_POOL_SIZE`] addresses.
pub fn parse_list(text: &str) -> Result<Vec<Ipv4Addr>, Problem> {
    let mut out = Vec::new();
    for item in text.split(',') {
        parse_item(item.trim(), &mut out)?;
    }
    Ok(out)
}

/// Parses one item (an address or a range) and appends its addresses to `out`.
pub fn parse_item(item: &str, out: &mut Vec<Ipv4Addr>) -> Result<(), Problem> {
    if item.is_empty() {
        return Err(Problem::new(
            "an empty item in an address list",
            "remove the stray comma",
        ));
    }
    let Some((first, last)) = item.split_once('-') else {
        out.push(host(item)?);
        return check_size(out);
    };
    if item.matches('.').count() == 6 {
        // Two full addresses.
        let first = host(first)?;
        let last = host(last)?;
        if first > last {
            return Err(reversed(item));
        }
        let count = u64::from(u32::from(last)) - u64::from(u32::from(first)) + 1;
        if count > MAX_POOL_SIZE as u64 {
            return Err(too_many());
        }
        for n in u32::from(first)..=u32::from(last) {
            let address = Ipv4Addr::from(n);
            check_usable(address, item)?;
            out.push(address);
        }
        return check_size(out);
    }
    // Poptop's form: a range inside one octet.
    let parts: Vec<&str> = item.split('.').collect();
    if parts.len() != 4
        || item.matches('-').count() != 1
        || !item
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(Problem::new(
            format!("`{item}` is neither an address nor a range"),
            "write an address (192.168.0.10) or a range (192.168.0.10-20 or \
             192.168.0.10-192.168.0.20)",
        ));
    }
    let mut octets = [0u8; 4];
    let mut range = None;
    for (i, part) in parts.iter().enumerate() {
        if let Some((low, high)) = part.split_once('-') {
            let (low, high) = (octet(low, item)?, octet(high, item)?);
            if low > high {
                return Err(reversed(item));
            }
            range = Some((i, low, high));
        } else if let Some(slot) = octets.get_mut(i) {
            *slot = octet(part, item)?;
        }
    }
    let Some((position, low, high)) = range else {
        return Err(Problem::new(
            format!("`{item}` is neither an address nor a range"),
            "write a range as 192.168.0.10-20",
        ));
    };
    for value in low..=high {
        if let Some(slot) = octets.get_mut(position) {
            *slot = value;
        }
        let address = Ipv4Addr::from(octets);
        check_usable(address, item)?;
        out.push(address);
        check_size(out)?;
    }
    Ok(())
}

/// One IPv4 address, usable by a host.
pub fn host(text: &str) -> Result<Ipv4Addr, Problem> {
    let address: Ipv4Addr = text.trim().parse().map_err(|_| {
        Problem::new(
            format!("`{text}` is not an IPv4 address"),
            "write a dotted quad such as 192.168.0.1 (host names are not resolved)",
        )
    })?;
    check_usable(address, text)?;
    Ok(address)
}

/// pppd's `bad_ip_adrs`, plus 0.0.0.0 and the broadcast address: not for a PPP peer.
fn check_usable(address: Ipv4Addr, item: &str) -> Result<(), Problem> {
    if address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || address.is_broadcast()
        || address.octets()[0] >= 240
    {
        return Err(Problem::new(
            format!("{address} (in `{item}`) cannot be a tunnel address"),
            "use unicast addresses, not 0.0.0.0, loopback, multicast or class E",
        ));
    }
    Ok(())
}

fn octet(text: &str, item: &str) -> Result<u8, Problem> {
    text.parse().map_err(|_| {
        Problem::new(
            format!("`{text}` in `{item}` is not a number from 0 to 255"),
            "fix the range, e.g. 192.168.0.10-20",
        )
    })
}

fn reversed(item: &str) -> Problem {
    Problem::new(
        format!("the range `{item}` ends before it starts"),
        "write the lower bound first",
    )
}

fn too_many() -> Problem {
    Problem::new(
        format!("the address list holds more than {MAX_POOL_SIZE} addresses"),
        "narrow the ranges: PPTP has no more call IDs than that",
    )
}

fn check_size(out: &[Ipv4Addr]) -> Result<(), Problem> {
    if out.len() > MAX_POOL_SIZE {
        return Err(too_many());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn poptop_ranges_and_lists() {
        assert_eq!(
            parse_list("192.168.0.234-238,192.168.0.245").unwrap(),
            [
                "192.168.0.234",
                "192.168.0.235",
                "192.168.0.236",
                "192.168.0.237",
                "192.168.0.238",
                "192.168.0.245"
            ]
            .map(a)
        );
        assert_eq!(
            parse_list("192.168-169.1.5").unwrap(),
            [a("192.168.1.5"), a("192.169.1.5")]
        );
        assert_eq!(
            parse_list(" 10.0.0.1 , 10.0.0.3").unwrap(),
            [a("10.0.0.1"), a("10.0.0.3")]
        );
    }

    #[test]
    fn full_ranges() {
        let list = parse_list("10.0.0.254-10.0.1.1").unwrap();
        assert_eq!(
            list,
            ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"].map(a)
        );
    }

    #[test]
    fn errors_name_the_item() {
        for (text, needle) in [
            ("10.0.0.1,", "empty item"),
            ("10.0.0.9-3", "ends before"),
            ("10.0.0.9-10.0.0.3", "ends before"),
            ("10.0.0.1-300", "0 to 255"),
            ("vpn.example", "not an IPv4 address"),
            ("10.0.0-1", "neither"),
            ("10.0.0.1-2-3", "neither"),
            ("127.0.0.1", "cannot be a tunnel address"),
            ("224.0.0.1-5", "cannot be a tunnel address"),
            ("0.0.0.0", "cannot be a tunnel address"),
            ("10.0.0.0-10.2.0.0", "more than"),
        ] {
            let problem = parse_list(text).unwrap_err();
            assert!(problem.what.contains(needle), "{text}: {problem:?}");
            assert!(!problem.fix.is_empty());
        }
    }

    #[test]
    fn the_list_size_is_capped() {
        let items: Vec<String> = (0..=257)
            .map(|i| format!("10.{}.{}.1-255", i / 256, i % 256))
            .collect();
        assert!(
            parse_list(&items.join(","))
                .unwrap_err()
                .what
                .contains("more than")
        );
    }
}
