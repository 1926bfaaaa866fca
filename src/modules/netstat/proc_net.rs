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

/// Unix sockets of `/proc/net/unix` as telegraf counts them (its socket list includes them):
/// (stream and seqpacket sockets, which have no TCP state: its `tcp_none`; datagram sockets:
/// part of its `udp_socket`). The `Type` column (`0001` stream, `0002` datagram, `0005`
/// seqpacket) is the fifth.
pub(crate) fn count_unix(text: &str) -> (u64, u64) {
    let (mut stream, mut dgram) = (0, 0);
    for line in text.lines().skip(1) {
        let mut it = line.split_ascii_whitespace();
        match (it.nth(4), it.nth(1)) {
            (Some("0002"), Some(_)) => dgram += 1,
            (Some(_), Some(_)) => stream += 1,
            _ => {}
        }
    }
    (stream, dgram)
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
        let unix = "Num       RefCount Protocol Flags    Type St Inode Path\n\
0000000000000000: 00000002 00000000 00010000 0001 01 20304 /run/systemd/notify\n\
0000000000000000: 00000002 00000000 00000000 0002 01 20305 /dev/log\n\
0000000000000000: 00000003 00000000 00000000 0001 03 20306\n\
0000000000000000: 00000002 00000000 00000000 0005 01 20307 @abstract\n\
short line\n";
        assert_eq!(count_unix(unix), (3, 1));
    }
}
