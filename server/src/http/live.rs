//! `GET /api/v1/live`: the live feed as Server-Sent Events (`crate::live`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use futures_util::stream;
use sync_protocol::{LiveEvent, LiveEventBody};

use super::{ApiError, AppState, Caller};
use crate::live::{Next, Published, Refused, Subscription};
use crate::users::UserDirectory;

/// Idle streams get a comment this often, so that proxies keep them open.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// How often an open stream checks that its caller's account is unchanged.
const SESSION_CHECK_INTERVAL: Duration = Duration::from_secs(15);
const RECONNECT_AFTER_FULL_SECONDS: u64 = 5;

/// Whose stream it is: it ends once the caller's account changed (role,
/// estate, password, disabled, sessions ended), like their token.
struct Session {
    users: UserDirectory,
    caller: Caller,
}

impl Session {
    fn still_valid(&self) -> bool {
        match self.users.get(&self.caller.user) {
            Ok(Some(user)) => !user.disabled && user.generation == self.caller.generation,
            // Unknown now, or the store cannot say: the stream ends; the
            // client reconnects and is answered properly.
            _ => false,
        }
    }
}

pub async fn live(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(caller.role.may_watch_crew(), "watch the live feed")?;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|raw| raw.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_last_event_id",
                        "Last-Event-ID must be the id of an event of this feed",
                    )
                })?,
        ),
    };
    let subscription = state
        .live
        .subscribe(&caller.estate, &caller.user, last_event_id)
        .map_err(|refused| match refused {
            Refused::Closed => ApiError::client(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is stopping; reconnect later",
            ),
            Refused::Full => ApiError::too_many(
                "too_many_subscribers",
                "the live feed has as many dashboards as it takes; reconnect later",
                RECONNECT_AFTER_FULL_SECONDS,
            ),
        })?;
    tracing::debug!(user = %caller.user, estate = %caller.estate, ?last_event_id, "live subscriber");
    let subscribed_at = state.clock.now();
    let session = Session {
        users: state.users.clone(),
        caller,
    };
    Ok(
        Sse::new(events(subscription, session, subscribed_at)).keep_alive(
            KeepAlive::new()
                .interval(KEEP_ALIVE_INTERVAL)
                .text("keep-alive"),
        ),
    )
}

/// What the stream still has to send before it waits on the hub.
enum Phase {
    /// `reset` first, if the client missed more than is kept.
    Start,
    Backlog(std::vec::IntoIter<Arc<Published>>),
    Live,
    /// Fell behind: `reset` was sent; the stream ends.
    Done,
}

fn events(
    subscription: Subscription,
    session: Session,
    subscribed_at: DateTime<Utc>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let session = Arc::new(session);
    stream::unfold(
        (subscription, Phase::Start),
        move |(mut subscription, mut phase)| {
            let session = session.clone();
            async move {
                loop {
                    match phase {
                        Phase::Start => {
                            let backlog = std::mem::take(&mut subscription.backlog).into_iter();
                            let reset = subscription.reset;
                            phase = Phase::Backlog(backlog);
                            if reset {
                                let event = reset_event(subscription.last_id, subscribed_at);
                                return Some((Ok(event), (subscription, phase)));
                            }
                        }
                        Phase::Backlog(mut backlog) => match backlog.next() {
                            Some(event) => {
                                return Some((
                                    Ok(sse_event(&event)),
                                    (subscription, Phase::Backlog(backlog)),
                                ));
                            }
                            None => phase = Phase::Live,
                        },
                        Phase::Live => {
                            let next = tokio::select! {
                                next = subscription.next() => next?,
                                () = tokio::time::sleep(SESSION_CHECK_INTERVAL) => {
                                    if !session.still_valid() {
                                        return None;
                                    }
                                    continue;
                                }
                            };
                            return match next {
                                // Nothing more reaches a caller whose account changed.
                                Next::Event(_) if !session.still_valid() => None,
                                Next::Event(event) => {
                                    Some((Ok(sse_event(&event)), (subscription, Phase::Live)))
                                }
                                Next::FellBehind => {
                                    let event = reset_event(subscription.last_id, subscribed_at);
                                    Some((Ok(event), (subscription, Phase::Done)))
                                }
                            };
                        }
                        Phase::Done => return None,
                    }
                }
            }
        },
    )
}

fn sse_event(event: &Published) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event(event.body.name())
        .data(&event.json)
}

/// A `reset` carries no id of its own: the client keeps its `Last-Event-ID`,
/// which is what tells the next connection where it stood.
fn reset_event(last_id: u64, at: DateTime<Utc>) -> Event {
    let reset = LiveEvent {
        id: last_id,
        at,
        body: LiveEventBody::Reset {},
    };
    Event::default()
        .event(reset.body.name())
        .data(serde_json::to_string(&reset).expect("a live event always serializes"))
}
