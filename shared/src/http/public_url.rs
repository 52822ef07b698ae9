//! Where Stripe and Piano reach this deployment, for webhook registration: `CRM_PUBLIC_BASE_URL` when
//! set (a custom domain with a base path), else the host the registration request itself came in on.
//! API Gateway's HTTP API passes the host it was called on (`{apiId}.execute-api.{region}.amazonaws.com`
//! or a custom domain) and `X-Forwarded-Proto: https`, so the deployment needs no URL of its own (the
//! template naming its own API from every function was a dependency cycle).

use std::str::FromStr;

use http::HeaderMap;
use http::header::HOST;
use http::uri::Authority;

/// Why no public URL could be worked out; each message says how to set one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicUrlError {
    #[error(
        "no public URL could be determined for this deployment: the request has no Host header (set CRM_PUBLIC_BASE_URL to choose one)"
    )]
    NoHost,
    // The value is the caller's and is not repeated back.
    #[error(
        "no public URL could be determined for this deployment: the request's Host header is not a host[:port] (set CRM_PUBLIC_BASE_URL to choose one)"
    )]
    BadHost,
    #[error(
        "no public URL could be determined for this deployment: X-Forwarded-Proto must be http or https (set CRM_PUBLIC_BASE_URL to choose one)"
    )]
    BadProto,
}

/// An absolute `http(s)://host[:port][/base path]` URL, without query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBaseUrl(url::Url);

impl PublicBaseUrl {
    /// `configured` (`CRM_PUBLIC_BASE_URL`) wins; otherwise `Host`, with the scheme of
    /// `X-Forwarded-Proto`, else `https`, except `http` for a loopback host (`crm serve` on a laptop).
    pub fn from_request(headers: &HeaderMap, configured: Option<&url::Url>) -> Result<Self, PublicUrlError> {
        if let Some(url) = configured {
            return Ok(Self(url.clone()));
        }
        let mut hosts = headers.get_all(HOST).iter();
        let host = hosts.next().ok_or(PublicUrlError::NoHost)?;
        if hosts.next().is_some() {
            return Err(PublicUrlError::BadHost);
        }
        let host = host.to_str().map_err(|_| PublicUrlError::BadHost)?;
        let authority = Authority::from_str(host).map_err(|_| PublicUrlError::BadHost)?;
        // `Authority` takes `user@host`; a URL for a provider to call never carries credentials.
        if authority.as_str().contains('@') {
            return Err(PublicUrlError::BadHost);
        }
        let loopback = match url::Host::parse(authority.host()).map_err(|_| PublicUrlError::BadHost)? {
            url::Host::Domain(name) => name == "localhost" || name.ends_with(".localhost"),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        let scheme = match headers.get("x-forwarded-proto") {
            None => {
                if loopback {
                    "http"
                } else {
                    "https"
                }
            }
            // A chain of proxies lists one per hop; the first is what the client used.
            Some(value) => match value.to_str().ok().and_then(|v| v.split(',').next()).map(str::trim) {
                Some(p) if p.eq_ignore_ascii_case("https") => "https",
                Some(p) if p.eq_ignore_ascii_case("http") => "http",
                _ => return Err(PublicUrlError::BadProto),
            },
        };
        let url = url::Url::parse(&format!("{scheme}://{authority}/")).map_err(|_| PublicUrlError::BadHost)?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(PublicUrlError::BadHost);
        }
        Ok(Self(url))
    }

    /// The URL of `path` (starting with `/`) under this base, keeping a base path.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0.as_str().trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn base(pairs: &[(&'static str, &str)]) -> Result<String, PublicUrlError> {
        PublicBaseUrl::from_request(&headers(pairs), None).map(|b| b.join("/webhooks/piano/daily"))
    }

    #[test]
    fn the_configured_url_wins_over_the_request() {
        let configured: url::Url = "https://crm.example.com/prod/".parse().unwrap();
        let from = |h: &HeaderMap| PublicBaseUrl::from_request(h, Some(&configured)).unwrap().join("/webhooks/x");
        assert_eq!(
            from(&headers(&[("host", "abc.execute-api.eu-west-1.amazonaws.com")])),
            "https://crm.example.com/prod/webhooks/x"
        );
        // Even a request no URL could be made from.
        assert_eq!(from(&HeaderMap::new()), "https://crm.example.com/prod/webhooks/x");
    }

    #[test]
    fn an_api_gateway_host_is_https() {
        let host = "abc123.execute-api.eu-west-1.amazonaws.com";
        assert_eq!(base(&[("host", host)]).unwrap(), format!("https://{host}/webhooks/piano/daily"));
        assert_eq!(
            base(&[("host", host), ("x-forwarded-proto", "https")]).unwrap(),
            format!("https://{host}/webhooks/piano/daily")
        );
        assert_eq!(
            base(&[("host", "CRM.Example.com:8443")]).unwrap(),
            "https://crm.example.com:8443/webhooks/piano/daily"
        );
    }

    #[test]
    fn x_forwarded_proto_chooses_the_scheme() {
        assert_eq!(
            base(&[("host", "crm.example.com"), ("x-forwarded-proto", "http")]).unwrap(),
            "http://crm.example.com/webhooks/piano/daily"
        );
        assert_eq!(
            base(&[("host", "crm.example.com"), ("x-forwarded-proto", "HTTP, https")]).unwrap(),
            "http://crm.example.com/webhooks/piano/daily"
        );
        assert_eq!(
            base(&[("host", "localhost:8787"), ("x-forwarded-proto", "https")]).unwrap(),
            "https://localhost:8787/webhooks/piano/daily"
        );
        assert_eq!(base(&[("host", "crm.example.com"), ("x-forwarded-proto", "ftp")]), Err(PublicUrlError::BadProto));
    }

    #[test]
    fn a_loopback_host_is_http() {
        assert_eq!(base(&[("host", "localhost")]).unwrap(), "http://localhost/webhooks/piano/daily");
        assert_eq!(base(&[("host", "localhost:8787")]).unwrap(), "http://localhost:8787/webhooks/piano/daily");
        assert_eq!(base(&[("host", "127.0.0.1:8787")]).unwrap(), "http://127.0.0.1:8787/webhooks/piano/daily");
        assert_eq!(base(&[("host", "[::1]:8787")]).unwrap(), "http://[::1]:8787/webhooks/piano/daily");
        // Port 443 on a loopback host is kept: http on it would otherwise mean port 80.
        assert_eq!(base(&[("host", "127.0.0.1:443")]).unwrap(), "http://127.0.0.1:443/webhooks/piano/daily");
        // Not loopback, though it looks close.
        assert_eq!(
            base(&[("host", "localhost.example.com")]).unwrap(),
            "https://localhost.example.com/webhooks/piano/daily"
        );
    }

    #[test]
    fn no_host_is_refused() {
        assert_eq!(base(&[]), Err(PublicUrlError::NoHost));
        let message = PublicUrlError::NoHost.to_string();
        assert!(message.contains("no public URL") && message.contains("CRM_PUBLIC_BASE_URL"), "{message}");
    }

    #[test]
    fn a_host_that_is_not_an_authority_is_refused() {
        for host in [
            "",
            "crm.example.com/prod",
            "crm.example.com/",
            "crm example.com",
            " crm.example.com x",
            "crm.example.com?x=1",
            "crm.example.com#x",
            "user:pass@crm.example.com",
            "crm.example.com:port",
            "crm.example.com:99999",
            ":443",
            "[::1",
            "http://crm.example.com",
        ] {
            assert_eq!(base(&[("host", host)]), Err(PublicUrlError::BadHost), "{host:?}");
        }
        assert_eq!(base(&[("host", "a.example.com"), ("host", "b.example.com")]), Err(PublicUrlError::BadHost));
        let mut map = HeaderMap::new();
        map.insert(HOST, HeaderValue::from_bytes(b"caf\xc3\xa9.example.com").unwrap());
        assert_eq!(PublicBaseUrl::from_request(&map, None), Err(PublicUrlError::BadHost));
    }
}
