//! Small pieces the network probes share: name resolution bounded by a timeout, TCP connect with
//! an optional source address or interface, address-family selection and `host:port` parsing.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

/// Which resolved addresses a probe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum IpVersion {
    /// The resolver's order.
    #[default]
    Any,
    Ipv4,
    Ipv6,
    PreferIpv4,
    PreferIpv6,
}

impl IpVersion {
    pub(crate) fn parse(s: &str) -> Option<IpVersion> {
        Some(match s {
            "any" | "" => IpVersion::Any,
            "ipv4" | "ip4" => IpVersion::Ipv4,
            "ipv6" | "ip6" => IpVersion::Ipv6,
            "prefer_ipv4" => IpVersion::PreferIpv4,
            "prefer_ipv6" => IpVersion::PreferIpv6,
            _ => return None,
        })
    }

    /// Filters and orders `addrs` (stable: the resolver's order within a family is kept).
    pub(crate) fn apply(self, mut addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
        match self {
            IpVersion::Any => {}
            IpVersion::Ipv4 => addrs.retain(SocketAddr::is_ipv4),
            IpVersion::Ipv6 => addrs.retain(SocketAddr::is_ipv6),
            IpVersion::PreferIpv4 => addrs.sort_by_key(|a| !a.is_ipv4()),
            IpVersion::PreferIpv6 => addrs.sort_by_key(|a| !a.is_ipv6()),
        }
        addrs
    }
}

/// Why a lookup gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LookupError {
    Timeout,
    /// An earlier lookup of this name timed out and is still stuck in getaddrinfo; no new one
    /// is started (reported as a timeout).
    Busy,
    Failed(String),
    NoAddress,
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::Timeout => f.write_str("name lookup timed out"),
            LookupError::Busy => f.write_str("previous lookup for this name still running"),
            LookupError::Failed(e) => write!(f, "name lookup failed: {e}"),
            LookupError::NoAddress => f.write_str("no address of the wanted IP version"),
        }
    }
}

/// Per input instance: for each name, how many lookups were given up on (timed out) while
/// getaddrinfo still runs on the blocking pool. While any is stuck, new lookups of that name are
/// not started, so a dead resolver cannot pile up blocking threads gather after gather.
/// Concurrent lookups of one name within a gather (several URLs on one host) are fine.
#[derive(Debug, Default, Clone)]
pub(crate) struct InFlight(Arc<Mutex<HashMap<String, usize>>>);

#[derive(Default)]
struct LookupState {
    done: bool,
    abandoned: bool,
}

/// Resolves `host` with the system resolver (getaddrinfo on tokio's blocking pool, so
/// /etc/hosts and nsswitch apply as for curl and telegraf). The wait is bounded by `timeout`;
/// the blocking call itself cannot be cancelled (see [`InFlight`]).
pub(crate) async fn lookup(
    host: &str,
    port: u16,
    timeout: Duration,
    in_flight: &InFlight,
) -> Result<Vec<SocketAddr>, LookupError> {
    if in_flight
        .0
        .lock()
        .map(|m| m.get(host).copied().unwrap_or(0) > 0)
        .unwrap_or(false)
    {
        return Err(LookupError::Busy);
    }
    let state = Arc::new(Mutex::new(LookupState::default()));
    let (owned, st, fl) = (host.to_owned(), state.clone(), in_flight.clone());
    let task = tokio::spawn(async move {
        let r = tokio::net::lookup_host((owned.as_str(), port))
            .await
            .map(|it| it.collect::<Vec<_>>());
        if let Ok(mut s) = st.lock() {
            s.done = true;
            if s.abandoned
                && let Ok(mut m) = fl.0.lock()
                && let Some(n) = m.get_mut(&owned)
            {
                *n -= 1;
                if *n == 0 {
                    m.remove(&owned);
                }
            }
        }
        r
    });
    match tokio::time::timeout(timeout, task).await {
        Err(_) => {
            if let Ok(mut s) = state.lock()
                && !s.done
            {
                s.abandoned = true;
                if let Ok(mut m) = in_flight.0.lock() {
                    *m.entry(host.to_owned()).or_default() += 1;
                }
            }
            Err(LookupError::Timeout)
        }
        Ok(Err(e)) => Err(LookupError::Failed(e.to_string())),
        Ok(Ok(Err(e))) => Err(LookupError::Failed(e.to_string())),
        Ok(Ok(Ok(v))) if v.is_empty() => Err(LookupError::NoAddress),
        Ok(Ok(Ok(v))) => Ok(v),
    }
}

/// Where outgoing connections come from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Source {
    pub address: Option<IpAddr>,
    /// Bound with SO_BINDTODEVICE.
    pub interface: Option<String>,
}

/// A TCP connect that either completed, failed or timed out.
pub(crate) enum Connect {
    Ok(TcpStream),
    Failed(io::Error),
    Timeout,
}

/// Connects to `addr` from `source` within `timeout`.
pub(crate) async fn connect_tcp(addr: SocketAddr, source: &Source, timeout: Duration) -> Connect {
    let socket = match if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    } {
        Ok(s) => s,
        Err(e) => return Connect::Failed(e),
    };
    if let Some(ip) = source.address
        && let Err(e) = socket.bind(SocketAddr::new(ip, 0))
    {
        return Connect::Failed(e);
    }
    if let Some(dev) = &source.interface
        && let Err(e) = socket.bind_device(Some(dev.as_bytes()))
    {
        return Connect::Failed(e);
    }
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Err(_) => Connect::Timeout,
        Ok(Err(e)) => Connect::Failed(e),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Connect::Ok(s)
        }
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6). An empty host means `localhost` (telegraf's rule).
pub(crate) fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| format!("{s:?}: expected [ipv6]:port"))?;
        (h, p)
    } else {
        s.rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected host:port"))?
    };
    if host.contains(':') && !s.starts_with('[') {
        return Err(format!("{s:?}: write IPv6 addresses as [addr]:port"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{s:?}: port must be a number from 0 to 65535"))?;
    let host = if host.is_empty() { "localhost" } else { host };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("a.b:80"), Ok(("a.b".into(), 80)));
        assert_eq!(split_host_port(":80"), Ok(("localhost".into(), 80)));
        assert_eq!(split_host_port("[::1]:53"), Ok(("::1".into(), 53)));
        assert!(split_host_port("::1:53").is_err());
        assert!(split_host_port("host").is_err());
        assert!(split_host_port("host:x").is_err());
    }

    #[test]
    fn ip_version_orders_and_filters() {
        let v4: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        assert_eq!(IpVersion::PreferIpv4.apply(vec![v6, v4]), vec![v4, v6]);
        assert_eq!(IpVersion::Ipv6.apply(vec![v6, v4]), vec![v6]);
        assert_eq!(IpVersion::Any.apply(vec![v6, v4]), vec![v6, v4]);
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_name_both_run() {
        let fl = InFlight::default();
        let t = Duration::from_secs(5);
        let (a, b) = tokio::join!(
            lookup("localhost", 80, t, &fl),
            lookup("localhost", 80, t, &fl)
        );
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    }

    #[tokio::test]
    async fn a_timed_out_lookup_blocks_the_name_until_it_ends() {
        let fl = InFlight::default();
        let first = lookup("localhost", 80, Duration::ZERO, &fl).await;
        if first == Err(LookupError::Timeout) {
            let again = lookup("localhost", 80, Duration::from_secs(5), &fl).await;
            // Either still stuck (Busy) or already finished and cleared.
            assert!(matches!(again, Err(LookupError::Busy) | Ok(_)), "{again:?}");
        }
        let start = std::time::Instant::now();
        while fl.0.lock().unwrap().contains_key("localhost") {
            assert!(start.elapsed() < Duration::from_secs(5), "never cleared");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            lookup("localhost", 80, Duration::from_secs(5), &fl)
                .await
                .is_ok()
        );
    }
}
