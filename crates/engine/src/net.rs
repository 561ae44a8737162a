//! Which addresses the engine may reach. A storefront's base URL (and the rewards path
//! joined to it) is typed in by an operator, and what comes back — failure screenshots, page
//! snapshots, error excerpts — is shown to everyone who can read; so by default the engine
//! refuses hosts that resolve to this machine or its private networks (loopback, private and
//! link-local ranges such as the cloud metadata address 169.254.169.254, …). A setting allows
//! them, for a shop on the operator's own network and for the demo.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is an address of this machine or of a private, link-local or otherwise
/// non-public network.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d
                || (v6.segments()[0] == 0x64 && v6.segments()[1] == 0xff9b) // NAT64
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// A host that resolves to an internal address while those are not allowed.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{host} resolves to {address}, an address of this machine or a private network; \
     Cartwright does not reach those unless allow_internal_addresses is set"
)]
pub struct InternalAddress {
    /// The host name.
    pub host: String,
    /// The internal address it resolved to.
    pub address: IpAddr,
}

/// Why a URL may not be reached.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unreachable {
    /// It points inside.
    #[error(transparent)]
    Internal(#[from] InternalAddress),
    /// Its host does not resolve.
    #[error("{host} does not resolve: {message}")]
    Resolve {
        /// The host name.
        host: String,
        /// What the resolver said.
        message: String,
    },
}

/// Refuses `url` when its host resolves to any internal address (every address is checked:
/// a name with one public and one private address is refused). Does nothing when `allow`.
pub async fn ensure_public(url: &url::Url, allow: bool) -> Result<(), Unreachable> {
    if allow {
        return Ok(());
    }
    let host = match url.host() {
        Some(url::Host::Ipv4(ip)) => return check(url, [IpAddr::V4(ip)]),
        Some(url::Host::Ipv6(ip)) => return check(url, [IpAddr::V6(ip)]),
        Some(url::Host::Domain(d)) => d.to_owned(),
        None => {
            return Err(Unreachable::Resolve {
                host: String::new(),
                message: "the URL has no host".into(),
            });
        }
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| Unreachable::Resolve {
            host: host.clone(),
            message: e.to_string(),
        })?;
    check(url, addresses.map(|a: SocketAddr| a.ip()))
}

fn check(url: &url::Url, addresses: impl IntoIterator<Item = IpAddr>) -> Result<(), Unreachable> {
    match addresses.into_iter().find(|ip| is_internal(*ip)) {
        Some(address) => Err(InternalAddress {
            host: url.host_str().unwrap_or_default().to_owned(),
            address,
        }
        .into()),
        None => Ok(()),
    }
}

/// Answers, for the browser's every request, whether its host is inside; names are resolved
/// once a minute at most (per host), and a name that does not resolve is left to the browser.
#[derive(Debug, Default)]
pub(crate) struct HostCheck {
    seen: std::sync::Mutex<std::collections::HashMap<String, (bool, std::time::Instant)>>,
}

impl HostCheck {
    const TTL: std::time::Duration = std::time::Duration::from_secs(60);

    /// Whether `url` leads inside (this machine, a private network).
    pub(crate) async fn inside(&self, url: &str) -> bool {
        let Ok(url) = url::Url::parse(url) else {
            return false;
        };
        if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
            return false;
        }
        let Some(host) = url.host_str().map(str::to_owned) else {
            return false;
        };
        let lock = || self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((inside, at)) = lock().get(&host)
            && at.elapsed() < Self::TTL
        {
            return *inside;
        }
        let inside = matches!(
            ensure_public(&url, false).await,
            Err(Unreachable::Internal(_))
        );
        let mut seen = lock();
        if seen.len() >= 1024 {
            seen.clear();
        }
        seen.insert(host, (inside, std::time::Instant::now()));
        inside
    }
}

/// A resolver for the engine's HTTP client that drops internal addresses, so a name that
/// changes what it resolves to after the check (DNS rebinding) still cannot lead inside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if public.is_empty() {
                let address = found
                    .first()
                    .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |a| a.ip());
                return Err(Box::new(InternalAddress { host, address }) as _);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "151.101.1.1", "2606:4700::1111"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn literal_and_resolved_hosts_are_checked() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        let e = ensure_public(&url("http://169.254.169.254/latest/meta-data/"), false)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("169.254.169.254"), "{e}");
        let e = ensure_public(&url("http://localhost:8080/"), false)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("localhost resolves to"), "{e}");
        assert!(ensure_public(&url("http://[::1]:1/"), false).await.is_err());
        assert!(ensure_public(&url("http://127.0.0.1/"), true).await.is_ok());
    }
}
