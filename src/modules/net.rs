//! `net`: per-interface traffic from `/proc/net/dev`, as telegraf's `net` input: measurement
//! `net`, tag `interface`, int counters `bytes_sent, bytes_recv, packets_sent, packets_recv,
//! err_in, err_out, drop_in, drop_out` and `speed` (Mbit/s from `/sys/class/net/<if>/speed`, −1
//! when the driver does not say). Without `interfaces`, every interface that is up and not
//! loopback (`/sys/class/net/<if>/flags`), as telegraf does; with it, exactly the matching ones.
//! Counters are those of the network namespace the agent runs in.

use serde::Deserialize;

use super::GatherError;
use std::collections::HashMap;
use std::fs::File;

use super::hostutil::{Globs, ProcFile, read_at_zero};
use crate::options::SpanError;
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.net]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// Interfaces to report (globs, e.g. `["eth*", "enp0s[0-1]"]`). Default: all up, non-loopback.
    interfaces: Option<toml::Spanned<Vec<String>>>,
    /// Accepted for telegraf compatibility. Telegraf ≥1.37 dropped the `interface=all` protocol
    /// line (use `nstat`), and so do we: there is nothing to ignore.
    ignore_protocol_stats: Option<bool>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub interfaces: Globs,
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let _ = raw.ignore_protocol_stats;
    Ok(Config {
        interfaces: Globs::resolve(raw.interfaces, "interfaces")?,
    })
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct IfStats {
    pub bytes_recv: u64,
    pub packets_recv: u64,
    pub err_in: u64,
    pub drop_in: u64,
    pub bytes_sent: u64,
    pub packets_sent: u64,
    pub err_out: u64,
    pub drop_out: u64,
}

/// Calls `f(interface, stats)` for each interface line of `/proc/net/dev`. The kernel refuses
/// interface names with `:`, `/` or white space, so the name is everything before the `:`.
pub(crate) fn parse_net_dev(text: &str, mut f: impl FnMut(&str, IfStats)) {
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let mut v = [0u64; 16];
        let mut n = 0;
        for (slot, s) in v.iter_mut().zip(rest.split_ascii_whitespace()) {
            match s.parse() {
                Ok(x) => {
                    *slot = x;
                    n += 1;
                }
                Err(_) => break,
            }
        }
        if n < 12 || name.is_empty() {
            continue;
        }
        f(
            name,
            IfStats {
                bytes_recv: v[0],
                packets_recv: v[1],
                err_in: v[2],
                drop_in: v[3],
                bytes_sent: v[8],
                packets_sent: v[9],
                err_out: v[10],
                drop_out: v[11],
            },
        );
    }
}

/// IFF_UP and IFF_LOOPBACK from `<linux/if.h>`.
const IFF_UP: u64 = 0x1;
const IFF_LOOPBACK: u64 = 0x8;

pub(crate) fn parse_flags(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

pub(crate) struct Net {
    config: Config,
    dev: ProcFile,
    buf: String,
    small: String,
    /// `flags` and `speed` of each interface, kept open and re-read with pread; dropped for
    /// interfaces that are gone.
    sys: HashMap<String, [Option<File>; 2]>,
    seen: Vec<String>,
}

impl Net {
    pub(crate) fn new(config: Config) -> Self {
        Net {
            config,
            dev: ProcFile::new("/proc/net/dev"),
            buf: String::with_capacity(4096),
            small: String::with_capacity(32),
            sys: HashMap::new(),
            seen: Vec::new(),
        }
    }

    /// Reads `/sys/class/net/<iface>/{flags,speed}` (`which` 0 or 1).
    fn sys(&mut self, iface: &str, which: usize) -> Option<&str> {
        let files = match self.sys.get_mut(iface) {
            Some(f) => f,
            None => self.sys.entry(iface.to_owned()).or_insert([None, None]),
        };
        let slot = &mut files[which];
        if slot.is_none() {
            let name = if which == 0 { "flags" } else { "speed" };
            let path = format!("/sys/class/net/{iface}/{name}");
            *slot = File::open(&*super::procfs::host::path(&path)).ok();
        }
        if read_at_zero(slot.as_ref()?, &mut self.small).is_err() {
            // `speed` of a link that is down fails every time; a removed device's file stays
            // failing: reopen next time either way.
            *slot = None;
            return None;
        }
        Some(self.small.trim())
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        self.dev.read_required(&mut self.buf)?;
        let buf = std::mem::take(&mut self.buf);
        let mut seen = std::mem::take(&mut self.seen);
        seen.clear();
        parse_net_dev(&buf, |name, s| {
            seen.push(name.to_owned());
            if self.config.interfaces.is_empty() {
                let flags = self.sys(name, 0).and_then(parse_flags);
                match flags {
                    Some(f) if f & IFF_UP != 0 && f & IFF_LOOPBACK == 0 => {}
                    _ => return,
                }
            } else if !self.config.interfaces.matches(name) {
                return;
            }
            let speed = self
                .sys(name, 1)
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|v| *v >= 0)
                .unwrap_or(-1);
            acc.add(
                Metric::new("net", ts)
                    .tag("interface", name)
                    .field("bytes_sent", s.bytes_sent)
                    .field("bytes_recv", s.bytes_recv)
                    .field("packets_sent", s.packets_sent)
                    .field("packets_recv", s.packets_recv)
                    .field("err_in", s.err_in)
                    .field("err_out", s.err_out)
                    .field("drop_in", s.drop_in)
                    .field("drop_out", s.drop_out)
                    .field("speed", speed),
            );
        });
        self.buf = buf;
        // An interface that went away (and may come back with another index) is reopened.
        self.sys.retain(|k, _| seen.contains(k));
        self.seen = seen;
        Ok(())
    }
}

super::ticked_input!(Net, super::Shape::Local);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let mut got = Vec::new();
        parse_net_dev(include_str!("../../tests/fixtures/net/dev"), |n, s| {
            got.push((n.to_owned(), s))
        });
        let names: Vec<_> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&"lo") && names.contains(&"eth0"),
            "{names:?}"
        );
        let lo = got.iter().find(|(n, _)| n == "lo").unwrap().1;
        assert_eq!(lo.bytes_recv, lo.bytes_sent);
        assert_eq!(lo.packets_recv, lo.packets_sent);
    }

    #[test]
    fn odd_names_and_flags() {
        let text = "h1\nh2\n  we,ird=1: 1 2 3 4 0 0 0 0 5 6 7 8 0 0 0 0\neth0:100 1 0 0 0 0 0 0 200 2 0 0 0 0 0 0\n";
        let mut got = Vec::new();
        parse_net_dev(text, |n, s| got.push((n.to_owned(), s)));
        assert_eq!(got[0].0, "we,ird=1");
        assert_eq!(got[0].1.drop_out, 8);
        assert_eq!(got[1].0, "eth0");
        assert_eq!(got[1].1.bytes_recv, 100);
        assert_eq!(parse_flags("0x1003\n"), Some(0x1003));
        assert_eq!(parse_flags("0x9"), Some(9));
    }

    #[tokio::test]
    async fn loopback_only_when_asked() {
        let mut t = crate::modules::hostutil::testing::TestAcc::new();
        let mut n = Net::new(resolve(Raw::default()).unwrap());
        n.gather(&mut t.acc).await.unwrap();
        assert!(
            t.lines()
                .iter()
                .all(|l| !l.starts_with("net,interface=lo "))
        );
        let mut n = Net::new(
            resolve(Raw {
                interfaces: Some(toml::Spanned::new(0..0, vec!["l?".into()])),
                ..Default::default()
            })
            .unwrap(),
        );
        n.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("net,interface=lo bytes_sent="));
        assert!(lines[0].contains("speed=-1i"), "{lines:?}");
    }
}
