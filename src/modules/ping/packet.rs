//! ICMP echo packets: building requests and recognising replies, for IPv4 and IPv6, on raw and
//! datagram ("ping") sockets. Pure functions over byte slices, so they are tested on fixed bytes.

/// ICMP header length (type, code, checksum, identifier, sequence).
pub(crate) const HEADER_LEN: usize = 8;
const ICMP4_ECHO_REPLY: u8 = 0;
const ICMP4_ECHO_REQUEST: u8 = 8;
const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;
const IPPROTO_ICMP: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// How a socket delivers packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `SOCK_RAW`: every ICMP packet of the host; IPv4 packets start with the IP header.
    Raw,
    /// `SOCK_DGRAM` + `IPPROTO_ICMP`: only replies to this socket, without IP header; the kernel
    /// replaces the identifier with the socket's port and computes the checksum.
    Datagram,
}

/// The Internet checksum (RFC 1071) over `data`.
pub(crate) fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes an echo request with `payload` bytes of payload into `buf` (cleared first). The IPv4
/// checksum is computed here; for IPv6 the kernel computes it (it covers a pseudo-header with the
/// source address, which only the kernel knows for sure).
pub(crate) fn encode_request(buf: &mut Vec<u8>, family: Family, ident: u16, seq: u16, payload: usize) {
    buf.clear();
    let ty = match family {
        Family::V4 => ICMP4_ECHO_REQUEST,
        Family::V6 => ICMP6_ECHO_REQUEST,
    };
    buf.extend_from_slice(&[ty, 0, 0, 0]);
    buf.extend_from_slice(&ident.to_be_bytes());
    buf.extend_from_slice(&seq.to_be_bytes());
    // A recognisable, non-constant pattern (a constant payload can hide link-level corruption).
    buf.extend((0..payload).map(|i| (i % 251) as u8));
    if family == Family::V4 {
        let c = checksum(buf);
        buf[2..4].copy_from_slice(&c.to_be_bytes());
    }
}

/// What a received echo reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reply {
    pub ident: u16,
    pub seq: u16,
    /// From the IPv4 header on raw sockets; otherwise the kernel reports it in a control message.
    pub ttl: Option<u8>,
}

/// Recognises an echo reply in what `recvmsg` returned; anything else (our own requests seen on
/// loopback by a raw socket, other ICMP types, truncated or corrupt packets) is `None`.
pub(crate) fn decode_reply(data: &[u8], family: Family, kind: Kind) -> Option<Reply> {
    let (icmp, ttl) = match (family, kind) {
        (Family::V4, Kind::Raw) => {
            let first = *data.first()?;
            if first >> 4 != 4 || data.len() < 20 || data[9] != IPPROTO_ICMP {
                return None;
            }
            let ihl = usize::from(first & 0x0f) * 4;
            if ihl < 20 {
                return None;
            }
            (data.get(ihl..)?, Some(data[8]))
        }
        _ => (data, None),
    };
    if icmp.len() < HEADER_LEN || icmp[1] != 0 {
        return None;
    }
    let want = match family {
        Family::V4 => ICMP4_ECHO_REPLY,
        Family::V6 => ICMP6_ECHO_REPLY,
    };
    if icmp[0] != want {
        return None;
    }
    // On raw IPv4 nothing checked the checksum for us (the kernel verifies ICMPv6 and, on ping
    // sockets, ICMPv4 before delivery).
    if family == Family::V4 && kind == Kind::Raw && checksum(icmp) != 0 {
        return None;
    }
    Some(Reply {
        ident: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo reply as a raw IPv4 socket returns it: 20-byte IP header (TTL 64, protocol 1) and
    /// an ICMP echo reply with identifier 0x1234, sequence 7 and 4 payload bytes.
    fn raw_v4_reply() -> Vec<u8> {
        let mut icmp = vec![0, 0, 0, 0, 0x12, 0x34, 0x00, 0x07, 1, 2, 3, 4];
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut ip = vec![
            0x45, 0, 0, 32, 0xab, 0xcd, 0x40, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(&icmp);
        ip
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3 example words 0001 f203 f4f5 f6f7: one's-complement sum ddf2.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        // Odd length pads with a zero byte.
        assert_eq!(checksum(&[0x01]), !0x0100);
        // A packet with its checksum filled in sums to zero.
        let mut b = Vec::new();
        encode_request(&mut b, Family::V4, 0xbeef, 65535, 56);
        assert_eq!(checksum(&b), 0);
    }

    #[test]
    fn request_layout() {
        let mut b = Vec::new();
        encode_request(&mut b, Family::V4, 0x0102, 0x0304, 56);
        assert_eq!(b.len(), 64);
        assert_eq!(&b[..2], &[8, 0]);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        encode_request(&mut b, Family::V6, 0x0102, 0x0304, 0);
        assert_eq!(b, vec![128, 0, 0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn raw_v4_reply_with_ip_header() {
        let p = raw_v4_reply();
        assert_eq!(
            decode_reply(&p, Family::V4, Kind::Raw),
            Some(Reply {
                ident: 0x1234,
                seq: 7,
                ttl: Some(64)
            })
        );
        // Corrupt payload: checksum fails.
        let mut bad = p.clone();
        bad[30] ^= 0xff;
        assert_eq!(decode_reply(&bad, Family::V4, Kind::Raw), None);
        // Our own request as seen on loopback (type 8) is not a reply.
        let mut req = Vec::new();
        encode_request(&mut req, Family::V4, 0x1234, 7, 4);
        let mut looped = p[..20].to_vec();
        looped.extend_from_slice(&req);
        assert_eq!(decode_reply(&looped, Family::V4, Kind::Raw), None);
        // Truncated.
        assert_eq!(decode_reply(&p[..24], Family::V4, Kind::Raw), None);
        assert_eq!(decode_reply(&[], Family::V4, Kind::Raw), None);
    }

    #[test]
    fn raw_v4_with_ip_options() {
        // IHL 6: 4 bytes of options before the ICMP header.
        let p = raw_v4_reply();
        let mut with_opts = p[..20].to_vec();
        with_opts[0] = 0x46;
        with_opts.extend_from_slice(&[1, 1, 1, 0]);
        with_opts.extend_from_slice(&p[20..]);
        assert_eq!(
            decode_reply(&with_opts, Family::V4, Kind::Raw).map(|r| r.seq),
            Some(7)
        );
    }

    #[test]
    fn datagram_v4_reply_has_no_ip_header() {
        let p = raw_v4_reply();
        let r = decode_reply(&p[20..], Family::V4, Kind::Datagram).unwrap();
        assert_eq!((r.ident, r.seq, r.ttl), (0x1234, 7, None));
        // An IPv4 header handed to the datagram decoder is not an echo reply.
        assert_eq!(decode_reply(&p, Family::V4, Kind::Datagram), None);
    }

    #[test]
    fn v6_reply() {
        let p = [129, 0, 0x55, 0x66, 0xab, 0xcd, 0xff, 0xff, 9, 9];
        for kind in [Kind::Raw, Kind::Datagram] {
            assert_eq!(
                decode_reply(&p, Family::V6, kind),
                Some(Reply {
                    ident: 0xabcd,
                    seq: 65535,
                    ttl: None
                })
            );
        }
        // Echo request (128) and an IPv4 reply type are refused on IPv6.
        assert_eq!(
            decode_reply(&[128, 0, 0, 0, 0, 1, 0, 1], Family::V6, Kind::Raw),
            None
        );
        assert_eq!(
            decode_reply(&[0, 0, 0, 0, 0, 1, 0, 1], Family::V6, Kind::Raw),
            None
        );
        // Non-zero code.
        assert_eq!(
            decode_reply(&[129, 1, 0, 0, 0, 1, 0, 1], Family::V6, Kind::Raw),
            None
        );
    }
}
