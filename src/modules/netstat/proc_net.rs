//! The /proc/net text files: the fallback when netlink `sock_diag` is refused, and
//! `/proc/net/sockstat`, which the netlink path reads too (TIME_WAIT and UDP totals).

use super::STATES;

/// The `tw` count from `/proc/net/sockstat` (`TCP: inuse 5 orphan 0 tw 10980 alloc 7 mem 1`).
pub(crate) fn sockstat_tw(text: &str) -> Option<u64> {
    sockstat_value(text, "TCP:", "tw")
}

/// One value of a `/proc/net/sockstat` line: `PREFIX key value key value …`.
pub(crate) fn sockstat_value(text: &str, prefix: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(prefix))?;
    let mut it = line.split_ascii_whitespace().skip(1);
    while let Some(k) = it.next() {
        let v = it.next()?;
        if k == key {
            return v.parse().ok();
        }
    }
    None
}

/// Adds the sockets of one `/proc/net/tcp*` file to `counts` (by state).
pub(crate) fn count_tcp(text: &str, counts: &mut [u64; 12]) {
    for line in text.lines().skip(1) {
        let Some(st) = line.split_ascii_whitespace().nth(3) else {
            continue;
        };
        let i = usize::from_str_radix(st, 16)
            .ok()
            .filter(|i| *i < STATES.len())
            .unwrap_or(0);
        counts[i] += 1;
    }
}

/// Sockets in one `/proc/net/udp*` file.
pub(crate) fn count_lines(text: &str) -> u64 {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures() {
        let mut c = [0u64; 12];
        count_tcp(include_str!("../../../tests/fixtures/netstat/tcp"), &mut c);
        assert!(c[10] > 0, "the fixture has listening sockets: {c:?}");
        let udp = count_lines(include_str!("../../../tests/fixtures/netstat/udp"));
        assert!(udp < 10_000);
        assert_eq!(
            sockstat_tw("sockets: used 88\nTCP: inuse 77 orphan 0 tw 10980 alloc 77 mem 175\n"),
            Some(10980)
        );
        assert_eq!(sockstat_tw("TCP: inuse 1\n"), None);
        assert_eq!(
            sockstat_value("TCP6: inuse 2\nUDP6: inuse 3\n", "UDP6:", "inuse"),
            Some(3)
        );
        let mut c = [0u64; 12];
        count_tcp(
            "hdr\n 0: 0100007F:0016 00000000:0000 01 0\n 1: x y 06 0\n 2: x y 0A\n 3: x y FF\n",
            &mut c,
        );
        assert_eq!((c[1], c[6], c[10], c[0]), (1, 1, 1, 1));
    }
}
