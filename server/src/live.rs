//! The live feed's hub: every event the server publishes gets the next id
//! and goes into a bounded ring (so that a reconnect with `Last-Event-ID`
//! resumes without a gap) and to each subscriber of its estate through a
//! bounded channel. A subscriber that falls behind is dropped, not buffered
//! without end: its stream ends with a `reset`. Closing the hub (at
//! shutdown) ends every stream, so that open dashboards never hold the
//! server up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use sync_protocol::{EstateId, LiveEvent, LiveEventBody, UserId};
use tokio::sync::mpsc;

/// Events kept for reconnects, across all estates.
pub const RING_CAPACITY: usize = 4096;
/// Events waiting for one subscriber before it counts as fallen behind.
pub const SUBSCRIBER_BUFFER: usize = 1024;
/// Streams open at once (about 40 KiB each); one more is refused.
pub const MAX_SUBSCRIBERS: u64 = 1024;
/// Streams one user keeps open at once: a few dashboards, not all of them.
pub const MAX_SUBSCRIBERS_PER_USER: usize = 16;

/// The handle publishers and subscribers share; cheap to clone.
#[derive(Clone)]
pub struct LiveHub {
    hub: Arc<Mutex<Hub>>,
    counters: Arc<Counters>,
}

/// Counts for `/metrics`.
#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    published: AtomicU64,
    dropped: AtomicU64,
}

struct Hub {
    last_id: u64,
    ring: VecDeque<(EstateId, Arc<Published>)>,
    subscribers: Vec<Subscriber>,
    closed: bool,
}

struct Subscriber {
    estate: EstateId,
    user: UserId,
    sender: mpsc::Sender<Arc<Published>>,
}

/// An event as published: the event, and its JSON, written once for every
/// subscriber instead of once per subscriber's stream.
pub struct Published {
    pub event: LiveEvent,
    pub json: String,
}

impl std::ops::Deref for Published {
    type Target = LiveEvent;

    fn deref(&self) -> &LiveEvent {
        &self.event
    }
}

impl Published {
    fn new(event: LiveEvent) -> Self {
        let json = serde_json::to_string(&event).expect("a live event always serializes");
        Self { event, json }
    }
}

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The hub was closed: the server is shutting down.
    #[error("the live feed is closed")]
    Closed,
    /// [`MAX_SUBSCRIBERS`] streams are open, or this user's
    /// [`MAX_SUBSCRIBERS_PER_USER`].
    #[error("the live feed has as many subscribers as it takes")]
    Full,
}

/// A new subscriber's start: what it missed, then what comes.
pub struct Subscription {
    /// Send a `reset` first: what it missed is no longer kept.
    pub reset: bool,
    /// The estate's events after the client's `Last-Event-ID`, oldest first.
    pub backlog: Vec<Arc<Published>>,
    /// The hub's last id when subscribing: the id a `reset` carries.
    pub last_id: u64,
    receiver: mpsc::Receiver<Arc<Published>>,
    hub: LiveHub,
    _connected: Connected,
}

/// Counts a subscriber as connected for as long as its stream lives.
struct Connected(Arc<Counters>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a subscriber's stream yields next.
pub enum Next {
    Event(Arc<Published>),
    /// It fell behind and was dropped: tell it to reload, then end.
    FellBehind,
}

impl LiveHub {
    /// Ids start at `start`'s microseconds, so that they keep increasing
    /// across restarts and an id from before a restart is known to be gone.
    pub fn new(start: DateTime<Utc>) -> Self {
        let last_id = u64::try_from(start.timestamp_micros()).unwrap_or(0);
        Self {
            hub: Arc::new(Mutex::new(Hub {
                last_id,
                ring: VecDeque::with_capacity(RING_CAPACITY),
                subscribers: Vec::new(),
                closed: false,
            })),
            counters: Arc::new(Counters::default()),
        }
    }

    /// Give the event the next id, keep it, and send it to the estate's
    /// subscribers; drop those whose buffer is full. Returns the id.
    pub fn publish(&self, estate: &EstateId, at: DateTime<Utc>, body: LiveEventBody) -> u64 {
        let mut hub = self.lock();
        hub.last_id += 1;
        let event = Arc::new(Published::new(LiveEvent {
            id: hub.last_id,
            at,
            body,
        }));
        if hub.ring.len() == RING_CAPACITY {
            hub.ring.pop_front();
        }
        hub.ring.push_back((estate.clone(), event.clone()));
        let mut dropped = 0;
        hub.subscribers.retain(|subscriber| {
            if subscriber.estate != *estate {
                return true;
            }
            match subscriber.sender.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped += 1;
                    false
                }
                // The stream is gone (the client disconnected).
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        self.counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        event.id
    }

    /// Subscribe `user` to `estate`'s events after `last_event_id` (none:
    /// from now on).
    pub fn subscribe(
        &self,
        estate: &EstateId,
        user: &UserId,
        last_event_id: Option<u64>,
    ) -> Result<Subscription, Refused> {
        let mut hub = self.lock();
        if hub.closed {
            return Err(Refused::Closed);
        }
        let users_open = hub
            .subscribers
            .iter()
            .filter(|subscriber| &subscriber.user == user && !subscriber.sender.is_closed())
            .count();
        if self.counters.connected.load(Ordering::Acquire) >= MAX_SUBSCRIBERS
            || users_open >= MAX_SUBSCRIBERS_PER_USER
        {
            return Err(Refused::Full);
        }
        let oldest_kept = hub
            .ring
            .front()
            .map_or(hub.last_id + 1, |(_, event)| event.id);
        let (reset, backlog) = match last_event_id {
            None => (false, Vec::new()),
            // Events after it were evicted, or it comes from another run.
            Some(last) if last.saturating_add(1) < oldest_kept || last > hub.last_id => {
                (true, Vec::new())
            }
            Some(last) => {
                let backlog = hub
                    .ring
                    .iter()
                    .filter(|(of, event)| event.id > last && of == estate)
                    .map(|(_, event)| event.clone())
                    .collect();
                (false, backlog)
            }
        };
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_BUFFER);
        hub.subscribers.push(Subscriber {
            estate: estate.clone(),
            user: user.clone(),
            sender,
        });
        self.counters.connected.fetch_add(1, Ordering::AcqRel);
        Ok(Subscription {
            reset,
            backlog,
            last_id: hub.last_id,
            receiver,
            hub: self.clone(),
            _connected: Connected(self.counters.clone()),
        })
    }

    /// End every stream and refuse new subscribers: the server is stopping.
    pub fn close(&self) {
        let mut hub = self.lock();
        hub.closed = true;
        hub.subscribers.clear();
    }

    /// The id of the last event published.
    pub fn last_id(&self) -> u64 {
        self.lock().last_id
    }

    /// Subscribers connected now.
    pub fn connected(&self) -> u64 {
        self.counters.connected.load(Ordering::Acquire)
    }

    pub fn published(&self) -> u64 {
        self.counters.published.load(Ordering::Relaxed)
    }

    /// Subscribers dropped for falling behind, since the start.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn lock(&self) -> MutexGuard<'_, Hub> {
        // Nothing panics while holding the lock; a poisoned hub is still whole.
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Subscription {
    /// The next live event; `None` once the hub closed or after `FellBehind`.
    pub async fn next(&mut self) -> Option<Next> {
        match self.receiver.recv().await {
            Some(event) => Some(Next::Event(event)),
            None if self.hub.is_closed() => None,
            None => Some(Next::FellBehind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supervisor() -> UserId {
        UserId::parse("zhuguan").unwrap()
    }
    use chrono::TimeZone;
    use sync_protocol::TicketId;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap()
    }

    fn estate(raw: &str) -> EstateId {
        EstateId::parse(raw).unwrap()
    }

    fn missed(ticket: &str) -> LiveEventBody {
        LiveEventBody::DeadlineMissed {
            ticket_id: TicketId::parse(ticket).unwrap(),
            rule: sync_protocol::RuleId::P1,
            due_at: start(),
            technician: None,
        }
    }

    #[tokio::test]
    async fn a_subscriber_gets_its_estates_events_in_id_order() {
        let hub = LiveHub::new(start());
        let mut subscription = hub.subscribe(&estate("E01"), &supervisor(), None).unwrap();
        let first = hub.publish(&estate("E01"), start(), missed("tk00000001"));
        hub.publish(&estate("E02"), start(), missed("tk00000002"));
        let third = hub.publish(&estate("E01"), start(), missed("tk00000003"));
        for expected in [first, third] {
            let Some(Next::Event(event)) = subscription.next().await else {
                panic!("an event")
            };
            assert_eq!(event.id, expected);
        }
        assert_eq!(hub.connected(), 1);
        drop(subscription);
        assert_eq!(hub.connected(), 0);
    }

    #[test]
    fn a_reconnect_gets_exactly_the_kept_events_after_its_last_id() {
        let hub = LiveHub::new(start());
        let ids: Vec<u64> = (0..5)
            .map(|_| hub.publish(&estate("E01"), start(), missed("tk00000001")))
            .collect();
        let subscription = hub
            .subscribe(&estate("E01"), &supervisor(), Some(ids[1]))
            .unwrap();
        assert!(!subscription.reset);
        let backlog: Vec<u64> = subscription.backlog.iter().map(|event| event.id).collect();
        assert_eq!(backlog, ids[2..]);
    }

    #[test]
    fn an_id_older_than_the_ring_or_from_another_run_gets_a_reset() {
        let hub = LiveHub::new(start());
        let first = hub.publish(&estate("E01"), start(), missed("tk00000001"));
        // One more than the ring holds: the event right after `first` is gone.
        for _ in 0..=RING_CAPACITY {
            hub.publish(&estate("E01"), start(), missed("tk00000001"));
        }
        assert!(
            hub.subscribe(&estate("E01"), &supervisor(), Some(first))
                .unwrap()
                .reset
        );
        assert!(
            !hub.subscribe(&estate("E01"), &supervisor(), Some(first + 1))
                .unwrap()
                .reset
        );
        let ahead = hub.last_id() + 1;
        assert!(
            hub.subscribe(&estate("E01"), &supervisor(), Some(ahead))
                .unwrap()
                .reset
        );
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped_and_told_to_reset() {
        let hub = LiveHub::new(start());
        let mut subscription = hub.subscribe(&estate("E01"), &supervisor(), None).unwrap();
        for _ in 0..=SUBSCRIBER_BUFFER {
            hub.publish(&estate("E01"), start(), missed("tk00000001"));
        }
        assert_eq!(hub.dropped(), 1);
        for _ in 0..SUBSCRIBER_BUFFER {
            assert!(matches!(subscription.next().await, Some(Next::Event(_))));
        }
        assert!(matches!(subscription.next().await, Some(Next::FellBehind)));
    }

    #[tokio::test]
    async fn closing_the_hub_ends_every_stream_and_refuses_new_ones() {
        let hub = LiveHub::new(start());
        let mut subscription = hub.subscribe(&estate("E01"), &supervisor(), None).unwrap();
        hub.close();
        assert!(subscription.next().await.is_none());
        assert!(hub.subscribe(&estate("E01"), &supervisor(), None).is_err());
    }
}
