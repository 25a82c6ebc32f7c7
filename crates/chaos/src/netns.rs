//! Members in their own Linux network namespaces, each joined by a veth pair
//! to one bridge in the tool's namespace (`ip netns`, `ip link`; needs root).
//!
//! The bridge holds the tool's address (the load's client), each namespace
//! one member address on the same /24 and no default route: with its link
//! down a member reaches nothing and nothing reaches it (not "routed
//! elsewhere"). Everything is named `pch<pid>...` (links) and
//! `pchaos-<pid>-<slot>` (namespaces); [`Net`] removes what it made when
//! dropped (errors, Ctrl-C and panics included), and [`Net::create`] first
//! removes what a crashed earlier run left: names with this prefix whose pid
//! is no longer running. Nothing else on the machine is touched.

use std::path::PathBuf;
use std::process::Command;

use crate::Error;

/// Prefix of the namespaces the tool creates.
const NS_PREFIX: &str = "pchaos-";
/// Prefix of the links (bridge, veth) it creates; kernel names are 15 bytes at most.
const LINK_PREFIX: &str = "pch";
/// The first two octets of the run's /24 (private, rarely used).
const SUBNET: &str = "10.231";

/// What a run without root gets when a fault needs namespaces.
fn unavailable(why: &str) -> Error {
    Error::Net(format!(
        "the partition fault puts members in their own network namespaces, which needs root (CAP_NET_ADMIN) \
         and iproute2's `ip`: {why}. Run as root, or leave `partition` out of --faults"
    ))
}

/// Runs `ip <args>`; its stderr is the error.
fn ip(args: &[&str]) -> Result<String, Error> {
    let out = Command::new("ip").args(args).output().map_err(|e| unavailable(&format!("cannot run `ip`: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Net(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

/// True when a process with this pid runs.
fn running(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a name `<prefix><pid><rest>` made by some run of the tool.
fn owner(name: &str, prefix: &str) -> Option<u32> {
    let digits: String = name.strip_prefix(prefix)?.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Namespaces and links of earlier runs whose process is gone: removed.
/// Returns what was removed.
pub(crate) fn clean_leftovers() -> Result<Vec<String>, Error> {
    let mine = std::process::id();
    let stale = |pid: u32| pid != mine && !running(pid);
    let mut removed = Vec::new();
    for line in ip(&["netns", "list"])?.lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        if owner(name, NS_PREFIX).is_some_and(stale) && ip(&["netns", "del", name]).is_ok() {
            removed.push(format!("netns {name}"));
        }
    }
    // `ip -o link` lines: `7: pch123h0@if6: <...> ...`; veth ends first, the bridge last.
    let mut links: Vec<String> = ip(&["-o", "link", "show"])?
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()))
        .filter(|n| owner(n, LINK_PREFIX).is_some_and(stale))
        .collect();
    links.sort_by_key(|n| n.ends_with('b'));
    for name in links {
        if ip(&["link", "del", &name]).is_ok() {
            removed.push(format!("link {name}"));
        }
    }
    Ok(removed)
}

/// A run's namespaces, veth pairs and bridge. Dropping it removes them.
#[derive(Debug)]
pub(crate) struct Net {
    bridge: String,
    /// The /24's third octet.
    octet: u8,
    slots: Vec<Slot>,
    removed: bool,
}

#[derive(Debug)]
struct Slot {
    ns: String,
    /// The tool's end of the pair (on the bridge); down cuts the member off.
    host_veth: String,
}

impl Net {
    /// Checks that namespaces can be made here: root and a working `ip netns`.
    pub(crate) fn check_available() -> Result<(), Error> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(unavailable("this process is not root"));
        }
        ip(&["netns", "list"]).map(|_| ()).map_err(|e| unavailable(&e.to_string()))
    }

    /// Removes leftovers of crashed runs, then makes a bridge and `members`
    /// namespaces, each with a veth pair, loopback and one address.
    pub(crate) fn create(members: usize) -> Result<Net, Error> {
        Net::check_available()?;
        let removed = clean_leftovers()?;
        if !removed.is_empty() {
            eprintln!("removed leftovers of an earlier run: {}", removed.join(", "));
        }
        let pid = std::process::id();
        let octet = free_octet()?;
        let mut net = Net { bridge: format!("{LINK_PREFIX}{pid}b"), octet, slots: Vec::new(), removed: false };
        // On any error below, dropping `net` removes what was made so far.
        ip(&["link", "add", &net.bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}/24", net.host_ip()), "dev", &net.bridge])?;
        ip(&["link", "set", &net.bridge, "up"])?;
        for slot in 0..members {
            let ns = format!("{NS_PREFIX}{pid}-{slot}");
            let host_veth = format!("{LINK_PREFIX}{pid}h{slot}");
            let peer = format!("{LINK_PREFIX}{pid}n{slot}");
            ip(&["netns", "add", &ns])?;
            net.slots.push(Slot { ns: ns.clone(), host_veth: host_veth.clone() });
            ip(&["link", "add", &host_veth, "type", "veth", "peer", "name", &peer])?;
            ip(&["link", "set", &peer, "netns", &ns])?;
            ip(&["link", "set", &host_veth, "master", &net.bridge])?;
            ip(&["link", "set", &host_veth, "up"])?;
            let inside = |args: &[&str]| {
                let mut all = vec!["-n", ns.as_str()];
                all.extend_from_slice(args);
                ip(&all)
            };
            inside(&["link", "set", "lo", "up"])?;
            inside(&["link", "set", &peer, "name", "eth0"])?;
            inside(&["addr", "add", &format!("{}/24", net.member_ip(slot)), "dev", "eth0"])?;
            inside(&["link", "set", "eth0", "up"])?;
        }
        Ok(net)
    }

    /// The tool's address on the bridge (the load's client binds here).
    pub(crate) fn host_ip(&self) -> String {
        format!("{SUBNET}.{}.1", self.octet)
    }

    /// Slot `slot`'s member address.
    pub(crate) fn member_ip(&self, slot: usize) -> String {
        format!("{SUBNET}.{}.{}", self.octet, 10 + slot)
    }

    /// The namespace file a member process of `slot` enters (setns).
    pub(crate) fn netns_path(&self, slot: usize) -> Option<PathBuf> {
        self.slots.get(slot).map(|s| PathBuf::from("/var/run/netns").join(&s.ns))
    }

    /// Cuts slot `slot` off (its veth down) or heals it (up).
    pub(crate) fn cut(&self, slot: usize, cut: bool) -> Result<(), Error> {
        let s = self.slots.get(slot).ok_or_else(|| Error::Net(format!("no namespace for member slot {slot}")))?;
        ip(&["link", "set", &s.host_veth, if cut { "down" } else { "up" }]).map(|_| ())
    }

    /// Removes the namespaces, pairs and bridge (also on drop); errors are
    /// printed, not returned: cleanup goes on with the rest.
    pub(crate) fn remove(&mut self) {
        if std::mem::replace(&mut self.removed, true) {
            return;
        }
        for s in self.slots.drain(..) {
            // Deleting one end of a pair deletes both, even while the
            // namespace lives on in a process that has not exited yet.
            let _ = ip(&["link", "del", &s.host_veth]);
            if let Err(e) = ip(&["netns", "del", &s.ns]) {
                eprintln!("protoactor-chaos: cleanup: {e}");
            }
        }
        if let Err(e) = ip(&["link", "del", &self.bridge]) {
            eprintln!("protoactor-chaos: cleanup: {e}");
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A third octet no interface on this machine uses in 10.231.0.0/16.
fn free_octet() -> Result<u8, Error> {
    let used = ip(&["-o", "-4", "addr", "show"])?;
    (1..=254u8)
        .find(|o| !used.contains(&format!(" {SUBNET}.{o}.")))
        .ok_or_else(|| Error::Net(format!("every {SUBNET}.x.0/24 is in use on this machine")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Connecting to a port nothing listens on in the member's namespace:
    /// refused while its link is up (its kernel answers), never refused
    /// while it is down (nothing answers at all).
    fn refused(address: &str) -> bool {
        let address: std::net::SocketAddr = address.parse().unwrap();
        match std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2)) {
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
            Ok(_) => panic!("nothing listens on {address}"),
        }
    }

    #[test]
    fn a_cut_member_is_unreachable_and_everything_is_removed_on_drop() {
        // Needs root: this fails (saying so) rather than skip.
        let net = Net::create(2).unwrap_or_else(|e| panic!("{e}"));
        let (bridge, ns) = (net.bridge.clone(), net.slots[1].ns.clone());
        let target = format!("{}:9", net.member_ip(1));
        assert!(refused(&target), "the member's namespace answers through the bridge");
        net.cut(1, true).unwrap();
        assert!(!refused(&target), "cut off: no answer, not even a refusal");
        net.cut(1, false).unwrap();
        assert!(refused(&target), "healed");
        drop(net);
        assert!(!ip(&["netns", "list"]).unwrap().contains(&ns), "namespace removed");
        assert!(!ip(&["-o", "link", "show"]).unwrap().contains(&bridge), "bridge removed");
    }

    #[test]
    fn only_names_of_this_tool_with_a_pid_are_owned() {
        assert_eq!(owner("pch123h0", LINK_PREFIX), Some(123));
        assert_eq!(owner("pch77b", LINK_PREFIX), Some(77));
        assert_eq!(owner("pchaos-42-1", NS_PREFIX), Some(42));
        assert_eq!(owner("eth0", LINK_PREFIX), None);
        assert_eq!(owner("pchx1", LINK_PREFIX), None);
        assert_eq!(owner("docker0", NS_PREFIX), None);
    }
}
