//! Which client a request comes from, for the login throttle and the
//! connection limits: the peer address of its connection, or, behind a
//! reverse proxy that is trusted to set it, the last `X-Forwarded-For` entry.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{ApiError, AppState};

/// The peer address of the connection a request came on; the server's
/// accept loop puts it on every request.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddress(pub IpAddr);

/// The client a request is counted against.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<Arc<AppState>> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let forwarded = state
            .limits
            .trust_forwarded_for
            .then(|| last_forwarded_for(parts))
            .flatten();
        let peer = parts.extensions.get::<PeerAddress>().map(|peer| peer.0);
        // A listener that knows no addresses (a simulated network) counts
        // every request against one client.
        Ok(ClientAddress(
            forwarded
                .or(peer)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

/// The address the nearest proxy appended: the only entry it vouches for.
fn last_forwarded_for(parts: &Parts) -> Option<IpAddr> {
    parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim()
        .parse()
        .ok()
}
