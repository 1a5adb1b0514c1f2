//! Reading requests: JSON bodies (errors name the field), bearer tokens, the client's IP.

use crate::config::Config;
use crate::error::ApiError;
use actix_web::HttpRequest;
use actix_web::http::header::HeaderMap;
use actix_web::web::{self, BytesMut};
use futures_util::StreamExt;
use ipnet::IpNet;
use protocol::{ErrorCode, json_error};
use serde::de::{DeserializeOwned, IgnoredAny};
use std::net::{IpAddr, SocketAddr};

/// Largest request body accepted (every contract body is far smaller).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Reads a JSON body: one that is not `application/json` is `415 unsupported_media_type` (so
/// a hostile page cannot send one with a "simple" cross-site form POST), malformed JSON is
/// `400 invalid_json`, a wrong or missing field is `422 invalid_request` naming it. An empty
/// body reads as `{}`, whatever its type.
pub async fn json<T: DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<T, ApiError> {
    let is_json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::new(ErrorCode::InvalidJson, "Could not read the request body")
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::invalid(format!(
                "Request body must be at most {MAX_BODY_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else if !is_json {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "The request body must be sent as Content-Type: application/json",
        ));
    } else {
        &body
    };
    parse_json(text)
}

/// Parses a request body, which must be one JSON object. Only a refusal looks further: malformed
/// JSON anywhere in the body (trailing bytes included) is `invalid_json` before any field is
/// blamed, and a body that is no object (serde would read a struct from an array of its fields)
/// is `invalid_request`.
pub fn parse_json<T: DeserializeOwned>(text: &[u8]) -> Result<T, ApiError> {
    let is_object = text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let de = &mut serde_json::Deserializer::from_slice(text);
    let field_error = match serde_path_to_error::deserialize(&mut *de) {
        Ok(value) if is_object && de.end().is_ok() => return Ok(value),
        Ok(_) => None,
        Err(err) => Some(err),
    };
    if let Err(err) = serde_json::from_slice::<IgnoredAny>(text) {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            format!("Malformed JSON: {}", json_error(&err)),
        ));
    }
    match field_error {
        Some(err) if is_object => {
            let path = err.path().to_string();
            let field = if path == "." {
                String::new()
            } else {
                format!("{path}: ")
            };
            Err(ApiError::invalid(format!(
                "{field}{}",
                json_error(&err.into_inner())
            )))
        }
        _ => Err(ApiError::invalid("The request body must be a JSON object")),
    }
}

/// The `X-Room-Password` header, decoded as UTF-8 (a password may be any text); one that is
/// not UTF-8 is `422 invalid_request`, never an empty password counted as wrong.
pub fn room_password(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    req.headers()
        .get("x-room-password")
        .map(|v| {
            std::str::from_utf8(v.as_bytes())
                .map_err(|_| ApiError::invalid("X-Room-Password must be UTF-8 text"))
        })
        .transpose()
}

/// The token of `Authorization: Bearer <token>`, if present.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The client, as every per-client limit keys it: the peer, unless the peer is a trusted proxy
/// (see [`forwarded_client`]); an IPv6 client is its `EPHEMERA_IPV6_PREFIX` prefix (its other
/// bits zero), since one home connection holds a whole /64.
pub fn client_ip(req: &HttpRequest, config: &Config) -> IpAddr {
    client_ip_of(req.peer_addr(), req.headers(), config)
}

/// [`client_ip`] from the parts a request has before actix-web sees it (the WebSocket upgrade).
pub fn client_ip_of(peer: Option<SocketAddr>, headers: &HeaderMap, config: &Config) -> IpAddr {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |a| canonical(a.ip()));
    let entries = headers
        .get_all("x-forwarded-for")
        .map(|v| v.to_str().unwrap_or(","))
        .flat_map(|v| v.split(','));
    let client = forwarded_client(peer, entries, &config.trusted_proxies);
    prefix_of(client, config.ipv6_prefix)
}

/// Walks `X-Forwarded-For` from the right while each hop is a trusted proxy: the first address
/// that is not one is the client. Each trusted hop vouches only for the entry to its left, so
/// an entry that does not parse ends the walk, and so does the chain's end: then the client is
/// the peer itself (never the leftmost entry, which anyone can write, trusted-looking or not).
fn forwarded_client<'a>(
    peer: IpAddr,
    entries: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    for entry in entries.rev() {
        let Ok(ip) = entry.trim().parse::<IpAddr>().map(canonical) else {
            return peer;
        };
        if !is_trusted(&ip) {
            return ip;
        }
    }
    peer
}

/// An IPv6 address with all but its first `bits` zeroed; IPv4 as it is.
fn prefix_of(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if bits < 128 => {
            let mask = u128::MAX << (128 - u32::from(bits));
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        other => other,
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::rest::CreateRoomRequest;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let walk = |peer: &str, chain: &str| {
            forwarded_client(ip(peer), chain.split(','), &trusted).to_string()
        };
        assert_eq!(walk("10.0.0.1", "1.1.1.1, 2.2.2.2, 10.0.0.5"), "2.2.2.2");
        assert_eq!(
            walk("3.3.3.3", "1.1.1.1, 2.2.2.2"),
            "3.3.3.3",
            "untrusted peer"
        );
        assert_eq!(walk("10.0.0.1", ""), "10.0.0.1");
        // Every entry trusted-looking: the leftmost is anyone's to write, so the peer it is.
        assert_eq!(walk("10.0.0.1", "10.9.9.9, 10.1.1.1"), "10.0.0.1");
        // An entry that does not parse ends the walk: nothing left of it is vouched for.
        assert_eq!(walk("10.0.0.1", "1.1.1.1, junk, 10.0.0.5"), "10.0.0.1");
        assert_eq!(walk("10.0.0.1", "1.1.1.1, junk, 2.2.2.2"), "2.2.2.2");
        assert_eq!(canonical(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
    }

    #[test]
    fn ipv6_clients_are_their_prefix() {
        assert_eq!(
            prefix_of(ip("2001:db8:1:2:3:4:5:6"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            prefix_of(ip("2001:db8:1:2:3:4:5:6"), 48),
            ip("2001:db8:1::")
        );
        assert_eq!(
            prefix_of(ip("2001:db8:1:2:3:4:5:6"), 128),
            ip("2001:db8:1:2:3:4:5:6")
        );
        assert_eq!(prefix_of(ip("1.2.3.4"), 64), ip("1.2.3.4"));
    }

    #[test]
    fn json_errors_name_the_field() {
        let err = parse_json::<CreateRoomRequest>(br#"{"owner_name": 5}"#).expect_err("wrong type");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(
            err.detail.starts_with("owner_name: invalid type"),
            "{}",
            err.detail
        );
        let err = parse_json::<CreateRoomRequest>(br#"{"owner_name": "a", "max_users": -1}"#)
            .expect_err("range");
        assert!(err.detail.starts_with("max_users: "), "{}", err.detail);
        let err = parse_json::<CreateRoomRequest>(br#"{}"#).expect_err("missing");
        assert!(err.detail.contains("owner_name"), "{}", err.detail);
        let err = parse_json::<CreateRoomRequest>(br#"{"owner_name": "#).expect_err("broken");
        assert_eq!(err.code, ErrorCode::InvalidJson);
        for body in [&br#"["alice"]"#[..], b" null", b"\"alice\""] {
            let err = parse_json::<CreateRoomRequest>(body).expect_err("not an object");
            assert_eq!(err.code, ErrorCode::InvalidRequest);
            assert_eq!(err.detail, "The request body must be a JSON object");
        }
        for broken in [
            &b"[1,"[..],
            br#"{"owner_name": 5,"#,
            br#"{"owner_name": "a"} x"#,
        ] {
            let err = parse_json::<CreateRoomRequest>(broken).expect_err("broken");
            assert_eq!(err.code, ErrorCode::InvalidJson, "{err:?}");
        }
    }
}
