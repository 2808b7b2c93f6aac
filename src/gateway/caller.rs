//! Who is calling: the client's address, and the scheme and host it reached us under.
//!
//! `X-Forwarded-For`, `X-Forwarded-Host` and `X-Forwarded-Proto` are believed only when the
//! connection comes from a configured trusted proxy (`MODELROUTER_TRUSTED_PROXIES`, none by
//! default): anyone else could write them, and a forged host would land in the portal's
//! snippets and in payment return URLs, a forged address would dodge per-address throttling.
//!
//! Architecture invariant: [`Caller::resolve`] is the only reader of these headers; everything
//! that needs the client's address, the public base URL or whether the browser used HTTPS
//! takes a [`Caller`].

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::config::Settings;

/// What the gateway believes about the client of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The client's address: the connection's peer or, when the peer is a trusted proxy, the
    /// nearest address in `X-Forwarded-For` that is not one of ours.
    pub ip: Option<IpAddr>,
    /// A trusted proxy said the client used HTTPS (`X-Forwarded-Proto: https`).
    pub forwarded_https: bool,
    /// The host the client asked for: a trusted proxy's `X-Forwarded-Host`, else `Host`.
    pub host: Option<String>,
}

impl Caller {
    /// Reads the caller of a request from the connection's `peer` and, if `peer` is one of
    /// `trusted` proxies, from the forwarding headers it set.
    pub fn resolve(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Caller {
        let peer = peer.map(|addr| canonical(addr.ip()));
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        let from_proxy = peer.as_ref().is_some_and(is_trusted);
        let first = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if !from_proxy {
            return Caller {
                ip: peer,
                forwarded_https: false,
                host: first("host"),
            };
        }
        // Each proxy appends the address it heard from: walk back from the nearest, past our
        // own proxies, to the first address none of them is. The ones before it were written
        // by someone we do not trust.
        let mut ip = peer;
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(hop) => {
                    let hop = canonical(hop);
                    ip = Some(hop);
                    if !is_trusted(&hop) {
                        break;
                    }
                }
                // An unreadable hop ends what can be believed; the proxy that wrote it is the
                // nearest client known.
                Err(_) => break,
            }
        }
        Caller {
            ip,
            forwarded_https: first("x-forwarded-proto")
                .is_some_and(|proto| proto.eq_ignore_ascii_case("https")),
            host: first("x-forwarded-host").or_else(|| first("host")),
        }
    }

    /// Whether the browser reached us over HTTPS: the configured public URL is `https://…`, or
    /// a trusted proxy said so.
    pub fn is_https(&self, settings: &Settings) -> bool {
        settings
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
            || self.forwarded_https
    }

    /// Where customers reach this gateway: the configured public URL, else the scheme and host
    /// of this request.
    pub fn base_url(&self, settings: &Settings) -> String {
        if let Some(url) = &settings.public_url {
            return url.clone();
        }
        let scheme = if self.forwarded_https {
            "https"
        } else {
            "http"
        };
        let host = self
            .host
            .clone()
            .unwrap_or_else(|| settings.listen.to_string());
        format!("{scheme}://{host}")
    }

    /// The client's address as text, for event metadata and throttling.
    pub fn ip_text(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:192.0.2.1`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The caller the edge middleware resolved; where it did not run (a router without it), the
/// connection's peer with no proxy trusted.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        Ok(Caller::resolve(peer, &parts.headers, &[]))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    fn nets(text: &str) -> Vec<IpNet> {
        crate::config::parse_trusted_proxies(text).unwrap()
    }

    const FORGED: [(&str, &str); 4] = [
        ("host", "gateway.internal:8080"),
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "https"),
    ];

    #[test]
    fn forwarding_headers_from_a_client_are_ignored() {
        let caller = Caller::resolve(peer("198.51.100.4"), &headers(&FORGED), &[]);
        assert_eq!(caller.ip, "198.51.100.4".parse().ok());
        assert_eq!(caller.host.as_deref(), Some("gateway.internal:8080"));
        assert!(!caller.forwarded_https);
        // Trusting some other proxy changes nothing for this client.
        let caller = Caller::resolve(peer("198.51.100.4"), &headers(&FORGED), &nets("10.0.0.0/8"));
        assert_eq!(caller.ip, "198.51.100.4".parse().ok());
        assert_eq!(caller.host.as_deref(), Some("gateway.internal:8080"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_host_and_scheme() {
        let caller = Caller::resolve(peer("10.1.2.3"), &headers(&FORGED), &nets("10.0.0.0/8"));
        assert_eq!(caller.ip, "203.0.113.9".parse().ok());
        assert_eq!(caller.host.as_deref(), Some("evil.example"));
        assert!(caller.forwarded_https);
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_hop() {
        // The client claimed 1.1.1.1; our edge proxy heard 203.0.113.9, our inner proxy heard
        // the edge proxy.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.7")]);
        let caller = Caller::resolve(peer("10.0.0.8"), &h, &nets("10.0.0.0/24"));
        assert_eq!(caller.ip, "203.0.113.9".parse().ok());
        // Split over two header lines, the same.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.9, 10.0.0.7"),
        ]);
        let caller = Caller::resolve(peer("10.0.0.8"), &h, &nets("10.0.0.0/24"));
        assert_eq!(caller.ip, "203.0.113.9".parse().ok());
    }

    #[test]
    fn a_trusted_proxy_without_forwarding_headers_is_the_client() {
        let caller = Caller::resolve(
            peer("::ffff:10.0.0.8"),
            &headers(&[("host", "gw")]),
            &nets("10.0.0.8"),
        );
        assert_eq!(caller.ip, "10.0.0.8".parse().ok());
        assert_eq!(caller.host.as_deref(), Some("gw"));
        assert!(!caller.forwarded_https);
    }
}
