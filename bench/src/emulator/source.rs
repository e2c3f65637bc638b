//! The clients' source addresses (`--source`): one address for all, or one each from a
//! range the caller made local (`ip route add local 10.100.0.0/16 dev lo`).

use std::net::Ipv4Addr;
use std::str::FromStr;

/// A range of source addresses: an IPv4 address or CIDR block. For a prefix shorter than
/// /31 the network and broadcast addresses are left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRange {
    first: u32,
    count: u32,
}

/// Why `--source` was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "source range {0:?} is not an IPv4 address or CIDR block such as 10.100.0.0/16 (prefix 8 to 32)"
)]
pub struct BadSourceRange(pub String);

impl SourceRange {
    /// One address for every client.
    pub fn single(address: Ipv4Addr) -> SourceRange {
        SourceRange {
            first: u32::from(address),
            count: 1,
        }
    }

    /// How many distinct addresses the range has.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Always false: a range has at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The source address of client `index`: distinct for the first [`len`](Self::len)
    /// clients, then reused in the same order.
    pub fn address(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.first.wrapping_add(index % self.count))
    }
}

impl FromStr for SourceRange {
    type Err = BadSourceRange;

    fn from_str(text: &str) -> Result<SourceRange, BadSourceRange> {
        let bad = || BadSourceRange(text.to_string());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, prefix.parse::<u32>().map_err(|_| bad())?),
            None => (text, 32),
        };
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        if !(8..=32).contains(&prefix) {
            return Err(bad());
        }
        let size = 1u64 << (32 - prefix);
        let network = u32::from(address) & !((size - 1) as u32);
        let (first, count) = if prefix >= 31 {
            (network, size)
        } else {
            (network.wrapping_add(1), size - 2)
        };
        Ok(SourceRange {
            first,
            count: u32::try_from(count).map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_gives_its_host_addresses_in_order_then_wraps() {
        let range: SourceRange = "10.100.0.0/16".parse().unwrap();
        assert_eq!(range.len(), 65534);
        assert_eq!(range.address(0), Ipv4Addr::new(10, 100, 0, 1));
        assert_eq!(range.address(254), Ipv4Addr::new(10, 100, 0, 255));
        assert_eq!(range.address(255), Ipv4Addr::new(10, 100, 1, 0));
        assert_eq!(range.address(65533), Ipv4Addr::new(10, 100, 255, 254));
        assert_eq!(range.address(65534), Ipv4Addr::new(10, 100, 0, 1));
    }

    #[test]
    fn host_bits_in_the_block_are_ignored() {
        let range: SourceRange = "10.100.7.9/24".parse().unwrap();
        assert_eq!(range.len(), 254);
        assert_eq!(range.address(0), Ipv4Addr::new(10, 100, 7, 1));
    }

    #[test]
    fn one_address_serves_every_client() {
        let range: SourceRange = "192.0.2.7".parse().unwrap();
        assert_eq!(range, SourceRange::single(Ipv4Addr::new(192, 0, 2, 7)));
        assert_eq!(range.len(), 1);
        assert_eq!(range.address(0), range.address(12345));
        let pair: SourceRange = "192.0.2.7/31".parse().unwrap();
        assert_eq!(pair.address(0), Ipv4Addr::new(192, 0, 2, 6));
        assert_eq!(pair.address(1), Ipv4Addr::new(192, 0, 2, 7));
    }

    #[test]
    fn nonsense_is_refused_with_the_text() {
        for text in [
            "",
            "10.0.0.0/7",
            "10.0.0.0/33",
            "10.0.0/8",
            "x/16",
            "10.0.0.0/",
        ] {
            let err = text.parse::<SourceRange>().unwrap_err();
            assert_eq!(err.0, text);
        }
    }
}
