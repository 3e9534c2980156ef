//! One writer among the aggregator instances: a lease row in the database with an expiry the
//! writer renews, and a fencing term.
//!
//! Invariants:
//! - At most one instance holds the lease at any moment of the database's clock: taking it is
//!   one statement that succeeds only for its holder or once it has expired
//!   ([`Lease::acquire`]); two instances asking at once are ordered by the row's lock.
//! - The term grows with every new holder, and when a holder whose lease expired takes it back:
//!   work begun under an older term is refused by [`fence`], which every claim and finish of a
//!   delivery runs in its own transaction. Its row lock makes a takeover wait for a fenced
//!   transaction in flight, so such a transaction commits wholly within its lease.
//! - A fenced transaction holds the lease's row: an instance's session ends a transaction left
//!   idle longer than a quarter of the lease ([`Lease::prepare_session`], PostgreSQL's
//!   `idle_in_transaction_session_timeout`), so a writer frozen inside one (SIGSTOP between
//!   its fence and its commit) delays a takeover by that much at most, and its work is rolled
//!   back.
//! - An instance trusts its lease on its own monotonic clock only until
//!   [`valid_until`]: measured from before it asked, shortened by a margin for the two clocks'
//!   rates. It starts a page request only when the lease outlasts the request's timeout
//!   ([`Held::may_send`]). A writer frozen past that (SIGSTOP, a stalled VM) sees the lease
//!   gone when it wakes, before it sends anything to the page.

use std::time::{Duration, Instant};

use crate::PgError;

/// A holder's term: every claim and finish of a delivery is checked against it.
pub type Term = i64;

/// Take the lease, or renew it; a row only for the instance that holds it afterwards.
const ACQUIRE_SQL: &str = "
INSERT INTO writer (id, holder, term, since, renewed_at, expires_at)
VALUES (1, $1, 1, now(), now(), now() + make_interval(secs => $2))
ON CONFLICT (id) DO UPDATE SET
    term = CASE WHEN writer.holder = excluded.holder AND writer.expires_at > now()
                THEN writer.term ELSE writer.term + 1 END,
    since = CASE WHEN writer.holder = excluded.holder AND writer.expires_at > now()
                 THEN writer.since ELSE now() END,
    holder = excluded.holder,
    renewed_at = now(),
    expires_at = excluded.expires_at
WHERE writer.holder = excluded.holder OR writer.expires_at <= now()
RETURNING term";

/// The lease's row as the database has it now (`status` shows it).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WriterRow {
    pub holder: String,
    pub term: Term,
    /// Seconds since it took the lease, and until the lease expires (negative: expired).
    pub held_for_s: f64,
    pub expires_in_s: f64,
}

/// What an instance is after asking for the lease.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    /// This instance writes, under `term`, while `Instant::now() < valid_until`.
    Writer { term: Term, valid_until: Instant },
    /// Another instance does (or the lease is free and was not taken: none).
    Follower { writer: Option<WriterRow> },
}

impl Held {
    /// The term to write under, if this instance may write at `now`.
    pub fn writes(&self, now: Instant) -> Option<Term> {
        self.may_send(now, Duration::ZERO)
    }

    /// The term to send a page request under, if this instance may start one at `now` that
    /// can take up to `takes` (its timeout): the lease must outlast the request, so no request
    /// of a deposed writer is still in flight when another instance takes over.
    pub fn may_send(&self, now: Instant, takes: Duration) -> Option<Term> {
        match self {
            Held::Writer { term, valid_until } if now + takes < *valid_until => Some(*term),
            _ => None,
        }
    }
}

/// An instance's part in the election.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The instance's name, unique among the aggregators (its host name, by default).
    pub instance: String,
    /// How long a lease lasts without renewal; a takeover happens within it.
    pub duration: Duration,
}

/// Until when an instance trusts a lease it asked for at `asked` (pure): the lease's duration
/// from before the request, less a twentieth for the database's clock running at another rate
/// than this host's (NTP keeps them within a fraction of a percent).
pub fn valid_until(asked: Instant, duration: Duration) -> Instant {
    asked + duration - duration / 20
}

impl Lease {
    /// Take the lease if it is free or expired, renew it if this instance holds it; else say
    /// who holds it.
    pub fn acquire(&self, client: &mut postgres::Client) -> Result<Held, PgError> {
        let asked = Instant::now();
        let secs = self.duration.as_secs_f64();
        match client.query_opt(ACQUIRE_SQL, &[&self.instance, &secs])? {
            Some(row) => Ok(Held::Writer {
                term: row.get(0),
                valid_until: valid_until(asked, self.duration),
            }),
            None => Ok(Held::Follower {
                writer: writer(client)?,
            }),
        }
    }

    /// Set up a connection of this instance (at every connect): its transactions left idle
    /// for a quarter of the lease are ended by the server (see the module's invariants).
    pub fn prepare_session(&self, client: &mut postgres::Client) -> Result<(), PgError> {
        let ms = (self.duration.as_millis() / 4).max(1);
        client.batch_execute(&format!("SET idle_in_transaction_session_timeout = {ms}"))?;
        Ok(())
    }

    /// Give the lease up now (a clean stop), so another instance takes over at its next
    /// renewal instead of after the lease runs out. Nothing if this instance does not hold it.
    pub fn release(&self, client: &mut postgres::Client) -> Result<(), PgError> {
        client.execute(
            "UPDATE writer SET expires_at = now() WHERE id = 1 AND holder = $1 AND expires_at > now()",
            &[&self.instance],
        )?;
        Ok(())
    }
}

/// The lease's row now, if any instance ever held it.
pub fn writer(client: &mut impl postgres::GenericClient) -> Result<Option<WriterRow>, PgError> {
    Ok(client
        .query_opt(
            "SELECT holder, term,
                    extract(epoch FROM now() - since)::float8,
                    extract(epoch FROM expires_at - now())::float8
             FROM writer WHERE id = 1",
            &[],
        )?
        .map(|r| WriterRow {
            holder: r.get(0),
            term: r.get(1),
            held_for_s: r.get(2),
            expires_in_s: r.get(3),
        }))
}

/// In a delivery's transaction: does `instance` still hold the lease under `term`? The row
/// stays locked until the transaction ends, so no takeover happens under it.
pub fn fence(
    tx: &mut postgres::Transaction<'_>,
    instance: &str,
    term: Term,
) -> Result<(), PgError> {
    let held = tx.query_opt(
        "SELECT 1 FROM writer WHERE id = 1 AND holder = $1 AND term = $2 AND expires_at > now()
         FOR SHARE",
        &[&instance, &term],
    )?;
    match held {
        Some(_) => Ok(()),
        None => Err(PgError::Deposed { term }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_trusted_for_less_than_its_duration_from_before_it_was_asked() {
        let asked = Instant::now();
        let d = Duration::from_secs(15);
        let until = valid_until(asked, d);
        assert_eq!(until - asked, Duration::from_millis(14_250));
        let held = Held::Writer {
            term: 3,
            valid_until: until,
        };
        assert_eq!(held.writes(asked), Some(3));
        assert_eq!(held.writes(until - Duration::from_millis(1)), Some(3));
        assert_eq!(held.writes(until), None, "not at the deadline itself");
        assert_eq!(Held::Follower { writer: None }.writes(asked), None);
        // A request that may take 10 s starts only while the lease has more than that left.
        let takes = Duration::from_secs(10);
        assert_eq!(held.may_send(asked, takes), Some(3));
        assert_eq!(held.may_send(until - takes, takes), None);
        assert_eq!(
            held.may_send(until - takes - Duration::from_millis(1), takes),
            Some(3)
        );
    }
}
