//! The hub's background work, batched rather than a timer per connection: the deadline sweep,
//! the liveness ticker (stall checks, liveness refreshes, pings; a slice of the rooms per
//! tick), the leaver that starts the grace of closed connections, and the drain at shutdown.

use crate::conn::{Conn, Event};
use crate::hub::{Hub, HubConfig};
use crate::rooms::SLICES;
use protocol::{Millis, close, now_ms};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use store::{Live, Stale};
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval, sleep};
/// How often the liveness ticker runs (each run handles a slice of the rooms). Short, so the
/// pings and refreshes of idle rooms come in small bursts that busy rooms barely wait behind.
const LIVENESS_TICK: Duration = Duration::from_millis(20);

/// Most members one batch of `Hub::leaver` starts the grace of. Small, so that in a mass close
/// the backlog waits in the leaver's queue rather than timing out in Redis's.
const LEAVE_BATCH: usize = 256;

/// How long a connection found stale waits for the bus event that would close it (`close_stale`).
const STALE_CLOSE_DELAY: Duration = Duration::from_secs(1);

/// How many liveness ticks apart the checks of one room come: for a stalled write (a tenth of
/// the stall timeout), a liveness refresh (the refresh interval) and a ping (the ping
/// interval). Each is rounded down to a multiple of `SLICES` (at least one), so every check of
/// a tick falls on the slice of the rooms it visits.
struct Cycles {
    stall: u64,
    touch: u64,
    ping: u64,
}

impl Cycles {
    fn of(config: &HubConfig) -> Cycles {
        let ticks = |period: Duration| {
            let ticks = (period.as_millis() / LIVENESS_TICK.as_millis()) as u64;
            (ticks / SLICES).max(1) * SLICES
        };
        Cycles {
            stall: ticks(config.stall_timeout / 10),
            touch: ticks(config.refresh_interval),
            ping: ticks(config.ping_interval),
        }
    }
}

/// Closes connections whose member the liveness refresh found gone (4401: join again),
/// attached elsewhere (4000) or whose room is gone (4004). The bus normally closes them first,
/// with the event's own code; this catches those whose event was lost while the subscription
/// was down. It waits `STALE_CLOSE_DELAY` so that an event racing the refresh still decides
/// the code.
fn close_stale(conns: &[Arc<Conn>], stale: Vec<(usize, Stale)>) {
    let stale: Vec<(Arc<Conn>, u16)> = stale
        .into_iter()
        .filter_map(|(i, why)| {
            let code = match why {
                Stale::Gone => close::UNAUTHORIZED,
                Stale::Replaced => close::REPLACED,
                Stale::RoomGone => close::NOT_FOUND,
            };
            Some((conns.get(i)?.clone(), code))
        })
        .collect();
    tokio::spawn(async move {
        sleep(STALE_CLOSE_DELAY).await;
        for (conn, code) in stale {
            conn.close(code);
        }
    });
}

impl Hub {
    pub(crate) async fn sweep_ticker(self) {
        let mut tick = interval(self.inner.config.sweep_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = self.inner.store.sweep().await {
                tracing::warn!(%err, "deadline sweep failed");
            }
        }
    }

    /// Keeps connections and members alive, spread over time: every `LIVENESS_TICK` it handles
    /// one slice of the rooms (`Rooms::due`): it drops their connections whose write has been
    /// stuck for the stall timeout (checked once per tenth of it, while any write is in
    /// progress), refreshes their members' liveness once per refresh interval
    /// (closing, via `close_stale`, those whose member is gone or replaced), and pings their
    /// sockets once per ping interval (closing those that sent nothing for two); each period
    /// rounded down as `Cycles` says. Refreshes run as tasks of their own, so a slow store
    /// never delays the ticker. Only the slice's rooms are visited, and only the connections of
    /// those with a check due, so thousands of idle rooms cost a steady trickle of work instead
    /// of bursts that would delay every busy room behind them.
    pub(crate) async fn liveness_ticker(self) {
        let config = &self.inner.config;
        let every = Cycles::of(config);
        let ping = Arc::new(Event::Ping);
        let mut tick = interval(LIVENESS_TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        for n in 1u64.. {
            tick.tick().await;
            let now = now_ms();
            let stalled_since = now.saturating_sub(config.stall_timeout.as_millis() as Millis);
            let silent_since = now.saturating_sub(2 * config.ping_interval.as_millis() as Millis);
            let any_writing = self.inner.writing.load(Ordering::Acquire) > 0;
            let (mut live, mut conns) = (Vec::new(), Vec::new());
            for room in self.rooms().due(n) {
                let phase = n + room.slot;
                let stall = any_writing && phase % every.stall == 0;
                let touch = phase % every.touch == 0;
                let ping_now = phase % every.ping == 0;
                if !(stall || touch || ping_now) {
                    continue;
                }
                for conn in room.conns.values() {
                    if stall && conn.writing_before(stalled_since) {
                        self.drop_slow(conn);
                    }
                    if ping_now {
                        if conn.last_seen.load(Ordering::Relaxed) < silent_since {
                            conn.close(close::SERVER_ERROR);
                        } else {
                            self.deliver(conn, ping.clone());
                        }
                    }
                    if touch && let Some(l) = conn.live.get() {
                        live.push(l.clone());
                        conns.push(conn.clone());
                    }
                }
            }
            if live.is_empty() {
                continue;
            }
            // Not awaited here: a slow Redis must not hold up the next slices' refreshes (nor
            // pings and stall checks) until live members outlast their grace.
            let hub = self.clone();
            tokio::spawn(async move {
                match hub.inner.store.touch_members_and_latest(&live).await {
                    Ok((stale, latest)) => {
                        if !stale.is_empty() {
                            close_stale(&conns, stale);
                        }
                        for (room_id, latest) in latest {
                            hub.check_latest(&room_id, latest);
                        }
                    }
                    Err(err) => tracing::warn!(%err, "liveness refresh failed"),
                }
            });
        }
    }

    /// A member's connection closed: its grace starts with the leaver's next batch.
    pub(crate) fn leave(&self, live: Live) {
        self.inner.leaving_count.fetch_add(1, Ordering::AcqRel);
        if self.inner.leaving.send(live).is_err() {
            self.inner.leaving_count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Starts the grace of members whose connection closed, in batches: while one batch is
    /// with the store the next gathers, so a mass disconnect costs a few round trips rather
    /// than two commands per member, and a lone one goes at once.
    pub(crate) async fn leaver(self, mut left: mpsc::UnboundedReceiver<Live>) {
        let mut batch = Vec::new();
        while left.recv_many(&mut batch, LEAVE_BATCH).await > 0 {
            if let Err(err) = self.inner.store.disconnect_members(&batch).await {
                tracing::warn!(%err, members = batch.len(), "could not start members' grace");
            }
            self.inner
                .leaving_count
                .fetch_sub(batch.len(), Ordering::AcqRel);
            batch.clear();
        }
    }

    /// Graceful shutdown: refuse new connections and fail readiness at once; after `delay`,
    /// close every connection with 1001 in batches (members keep their grace, so they resume
    /// elsewhere). Returns when all are gone and their graces started, or `within` has passed.
    pub async fn drain(&self, delay: Duration, within: Duration) {
        self.inner.draining.store(true, Ordering::Release);
        sleep(delay).await;
        let conns: Vec<Arc<Conn>> = self
            .rooms()
            .iter()
            .flat_map(|(_, r)| r.conns.values().cloned())
            .collect();
        for batch in conns.chunks(256) {
            for conn in batch {
                conn.close(close::GOING_AWAY);
            }
            sleep(Duration::from_millis(10)).await;
        }
        let deadline = tokio::time::Instant::now() + within;
        let busy =
            || self.connections() > 0 || self.inner.leaving_count.load(Ordering::Acquire) > 0;
        while busy() && tokio::time::Instant::now() < deadline {
            sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::Rate;

    fn config(stall: u64, refresh_ms: u64, ping: u64) -> HubConfig {
        HubConfig {
            max_message_chars: 1,
            history_limit: 1,
            edit_window: Duration::from_secs(1),
            rate: Rate {
                per_second: 1,
                burst: 1,
            },
            refresh_interval: Duration::from_millis(refresh_ms),
            ping_interval: Duration::from_secs(ping),
            queue_bytes: 1,
            stall_timeout: Duration::from_secs(stall),
            max_connections: 1,
            connect_rate: 1,
            unsubscribe_delay: Duration::ZERO,
            sweep_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn every_period_is_a_multiple_of_the_slice_cycle_and_never_longer_than_configured() {
        // The defaults: stall checks every 1 s, refreshes every 5 s, pings every 20 s.
        let c = Cycles::of(&config(10, 5000, 20));
        assert_eq!((c.stall, c.touch, c.ping), (50, 250, 1000));
        // A refresh every 1/3 s rounds down to one visit cycle (200 ms); none is shorter.
        let c = Cycles::of(&config(1, 333, 1));
        assert_eq!((c.stall, c.touch, c.ping), (10, 10, 50));
    }
}
