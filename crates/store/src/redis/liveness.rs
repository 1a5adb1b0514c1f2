//! Liveness and deadlines: the batched refresh of live members (plain commands, not a
//! script), disconnects, the deadline schedule and its sweep.

use super::*;

/// The schedule of every room's next deadline.
pub(super) const SCHEDULE: &str = "eph:deadlines";

/// How long a sweeping instance holds the rooms it took from the schedule.
pub(super) const LEASE_MS: Millis = 5_000;

/// Most rooms one sweep takes.
pub(super) const SWEEP_BATCH: usize = 512;

/// Most members one liveness script refreshes (Lua's unpack takes a few thousand values).
pub(super) const TOUCH_BATCH: usize = 500;

/// What a refresh found (`RedisStore::touch_all`).
pub(super) struct Touched<'a> {
    pub(super) stale: Vec<(usize, Stale)>,
    pub(super) latest: Vec<(&'a str, Option<u64>)>,
}

impl RedisStore {
    /// Moves each room's schedule entry to `at` if that is earlier (`ZADD XX LT`). Every room
    /// has an entry from its creation until it is gone, so a room that is gone gets none back
    /// (`XX`); a late entry just finds nothing due.
    pub(super) async fn schedule_at<'a>(
        &self,
        client: &Client,
        rooms: impl IntoIterator<Item = &'a str>,
        at: Millis,
    ) -> Result<()> {
        let at = at.to_string();
        let mut args = vec![SCHEDULE, "XX", "LT"];
        for room_id in rooms {
            args.extend([at.as_str(), room_id]);
        }
        self.command::<Value, _>(client, "ZADD", args).await?;
        Ok(())
    }

    /// Moves the room's schedule entry to the deadline a claim or resume made now will set,
    /// before the script runs: if the script's reply is lost, or Redis fails right after it,
    /// the member it made is still swept in time (a schedule moved after the script could be
    /// missed, leaving a ghost holding a name and a slot until the room expired). A script that
    /// did not run costs one sweep that finds nothing due. Returns the `now` it used.
    pub(super) async fn schedule_deadline_of_a_new_connection(
        &self,
        room_id: &str,
    ) -> Result<Millis> {
        let now = self.now();
        self.schedule_at(&self.client, [room_id], now + self.config.live_ms())
            .await?;
        Ok(now)
    }

    pub async fn touch_members(&self, live: &[Live]) -> Result<Vec<(usize, Stale)>> {
        let deadline = self.now() + self.config.live_ms();
        Ok(self.touch_all(live, deadline, false).await?.stale)
    }

    /// [`RedisStore::touch_members`], and each room's latest message id, in one pipeline.
    pub async fn touch_members_and_latest(
        &self,
        live: &[Live],
    ) -> Result<(Vec<(usize, Stale)>, Vec<(Arc<str>, Option<u64>)>)> {
        let deadline = self.now() + self.config.live_ms();
        let touched = self.touch_all(live, deadline, true).await?;
        let latest = touched
            .latest
            .into_iter()
            .map(|(room_id, seq)| (Arc::from(room_id), seq))
            .collect();
        Ok((touched.stale, latest))
    }

    /// Starts the grace of each connection's member. Each room's schedule entry moves first,
    /// for the same reason as before a claim.
    pub async fn disconnect_members(&self, live: &[Live]) -> Result<()> {
        let deadline = self.now() + self.config.presence_grace_ms;
        let mut rooms: Vec<&str> = live.iter().map(|l| &*l.room_id).collect();
        rooms.sort_unstable();
        rooms.dedup();
        self.schedule_at(&self.background, rooms, deadline).await?;
        self.touch_all(live, deadline, false).await?;
        Ok(())
    }

    /// Moves the deadline of each member whose current connection is the given one: one
    /// `ZADD XX CH` per room (per `TOUCH_BATCH` members), pipelined on the background
    /// connection, so a refresh of thousands of rooms is a few writes each way. A member's entry
    /// in the room's `alive` set names its current session, so the ZADD moves exactly the current
    /// ones; only where it moves fewer than all does a read find out why. Plain commands, not a
    /// script: a Lua call costs Redis four times its commands, and this runs for every hosted
    /// room every refresh period. With `latest`, each room's latest message id is read in the
    /// same pipeline. Returns the positions in `live` of the stale connections, in order, and the
    /// latest ids. The first failure fails the whole (Redis
    /// is then failing for every room alike).
    pub(super) async fn touch_all<'a>(
        &self,
        live: &'a [Live],
        deadline: Millis,
        latest: bool,
    ) -> Result<Touched<'a>> {
        let mut by_room: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, l) in live.iter().enumerate() {
            by_room.entry(&l.room_id).or_default().push(i);
        }
        let batches: Vec<(&'a str, Vec<usize>)> = by_room
            .iter()
            .flat_map(|(room_id, indices)| {
                indices
                    .chunks(TOUCH_BATCH)
                    .map(move |batch| (*room_id, batch.to_vec()))
            })
            .collect();
        let rooms: Vec<&'a str> = if latest {
            by_room.keys().copied().collect()
        } else {
            Vec::new()
        };
        self.check()?;
        let deadline = deadline.to_string();
        let pipeline = self.background.pipeline();
        for (room_id, batch) in &batches {
            let mut zadd: Vec<Value> = vec![key(room_id, "alive").into(), "XX".into(), "CH".into()];
            for &i in batch {
                let l = &live[i];
                zadd.push(deadline.as_str().into());
                zadd.push(format!("{}\n{}", l.member_id, l.session).into());
            }
            let cmd = CustomCommand::new_static("ZADD", ClusterHash::FirstKey, false);
            pipeline
                .custom::<(), Value>(cmd, zadd)
                .await
                .map_err(|err| self.failed(err))?;
        }
        for room_id in &rooms {
            let cmd = CustomCommand::new_static("HGET", ClusterHash::FirstKey, false);
            let args: Vec<Value> = vec![key(room_id, "meta").into(), "seq".into()];
            pipeline
                .custom::<(), Value>(cmd, args)
                .await
                .map_err(|err| self.failed(err))?;
        }
        let mut replies = pipeline.try_all::<Value>().await.into_iter();
        let mut next = || -> Result<Value> {
            replies
                .next()
                .ok_or_else(malformed)?
                .map_err(|err| self.failed(err))
        };
        let mut moved = Vec::with_capacity(batches.len());
        for _ in &batches {
            moved.push(next()?.as_u64().ok_or_else(malformed)? as usize);
        }
        let mut latest = Vec::with_capacity(rooms.len());
        for room_id in &rooms {
            let seq = next()?;
            latest.push((*room_id, seq.as_string().and_then(|s| s.parse().ok())));
        }
        let mut stale = Vec::new();
        for ((room_id, batch), moved) in batches.iter().zip(moved) {
            if moved == batch.len() {
                continue;
            }
            let members: Vec<&Live> = batch.iter().map(|&i| &live[i]).collect();
            let found = self.why_not_moved(room_id, &members).await?;
            stale.extend(
                found
                    .into_iter()
                    .filter_map(|(j, why)| Some((*batch.get(j)?, why))),
            );
        }
        stale.sort_unstable_by_key(|&(i, _)| i);
        Ok(Touched { stale, latest })
    }

    /// For a room where a refresh moved fewer deadlines than it had members: which of them are
    /// stale (the others just had this deadline already, set in the same millisecond).
    pub(super) async fn why_not_moved(
        &self,
        room_id: &str,
        members: &[&Live],
    ) -> Result<Vec<(usize, Stale)>> {
        let client = &self.background;
        let mut hmget = vec![key(room_id, "state")];
        hmget.extend(members.iter().map(|l| l.member_id.to_string()));
        let states: Vec<Value> = self.command(client, "HMGET", hmget).await?;
        // A missing state may mean the whole room is gone (its keys go together).
        if states.iter().any(Value::is_null)
            && self
                .command::<u64, _>(client, "EXISTS", vec![key(room_id, "meta")])
                .await?
                == 0
        {
            return Ok((0..members.len()).map(|j| (j, Stale::RoomGone)).collect());
        }
        let mut stale = Vec::new();
        for (j, (l, st)) in members.iter().zip(states).enumerate() {
            // A state is "session\nresume\nfold".
            match st.as_str() {
                None => stale.push((j, Stale::Gone)),
                Some(st) if st.starts_with(&format!("{}\n", l.session)) => {}
                Some(_) => stale.push((j, Stale::Replaced)),
            }
        }
        Ok(stale)
    }

    pub async fn sweep(&self) -> Result<usize> {
        let now = self.now();
        let args = ClaimDueArgs {
            now,
            lease_ms: LEASE_MS,
            most: SWEEP_BATCH,
        }
        .argv();
        let mut reply = self
            .run_on(
                &self.background,
                &self.scripts.claim_due,
                vec![SCHEDULE.into()],
                args,
            )
            .await?
            .into_array()
            .into_iter();
        let lease = reply
            .next()
            .and_then(|v| v.as_u64())
            .ok_or_else(malformed)?;
        let due: Vec<String> = reply
            .next()
            .map(Value::into_array)
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_string)
            .collect();
        // One room at a time: Redis would run a pass sent at once back to back, and chat
        // commands would wait behind it (ANALYSIS.md, "Tried, measured, not kept").
        for room_id in &due {
            self.sweep_room(room_id, lease, now).await?;
        }
        Ok(due.len())
    }

    /// Runs one leased room's deadlines, then gives its schedule entry back.
    pub(super) async fn sweep_room(&self, room_id: &str, lease: Millis, now: Millis) -> Result<()> {
        let args = SweepRoomArgs {
            expired_frame: closed_frame(room_id, CloseReason::Expired, now)?,
            owner_offline_frame: closed_frame(room_id, CloseReason::OwnerOffline, now)?,
            presence_grace_ms: self.config.presence_grace_ms,
        }
        .argv();
        let mut reply = self
            .run_on(
                &self.background,
                &self.scripts.sweep_room,
                room_keys(room_id),
                prelude_args(room_id, now, args),
            )
            .await?
            .into_array()
            .into_iter();
        let next = match reply.next().and_then(|v| v.as_string()).as_deref() {
            Some("next") => reply
                .next()
                .and_then(|v| v.as_u64())
                .ok_or_else(malformed)?
                .to_string(),
            _ => {
                self.give_back(&self.background, reply.next()).await?;
                "gone".into()
            }
        };
        let args = RescheduleArgs {
            room_id: room_id.to_owned(),
            lease,
            next,
        }
        .argv();
        self.run_on(
            &self.background,
            &self.scripts.reschedule,
            vec![SCHEDULE.into()],
            args,
        )
        .await?;
        Ok(())
    }
}
