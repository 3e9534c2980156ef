//! The closed sets of words the spool stores in text columns (`outbox.status`,
//! `events.status`, `incidents.status`): typed in Rust, checked when read, written as the
//! word.
//!
//! Invariant: a word the schema does not know is an error naming it when read (rusqlite's
//! `FromSql`, or `FromStr` for another store), never a silent mismatch.

/// A closed set of words stored in a text column: typed in Rust, checked when read (a word
/// the schema does not know is an error naming it), written as the word.
macro_rules! word_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> std::result::Result<Self, ()> {
                match s {
                    $($s => Ok($name::$v),)+
                    _ => Err(()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                match v.as_str()? {
                    $($s => Ok($name::$v),)+
                    other => Err(rusqlite::types::FromSqlError::Other(
                        format!("unknown {} {other:?}", stringify!($name)).into(),
                    )),
                }
            }
        }
    };
}

word_enum! {
    /// Where a delivery is (`outbox.status`).
    DeliveryStatus {
        /// Waiting to be sent (maybe held, maybe backing off).
        Pending = "pending",
        /// Claimed by the flusher, request in flight.
        Sending = "sending",
        /// The page confirmed it.
        Done = "done",
        /// A newer state of the component replaced it before it was sent.
        Superseded = "superseded",
        /// Not sent: the page already showed it.
        Skipped = "skipped",
        /// Given up, with the reason; `replay --dead` brings it back.
        Dead = "dead",
    }
}

word_enum! {
    /// What became of a recorded event (`events.status`).
    EventStatus {
        /// It changed (or confirmed) the state of one or more tests.
        Applied = "applied",
        /// It changes no state (an informational event, or a mapping that ignores it).
        Info = "info",
        /// It could not be mapped or routed; `replay --rejected` applies it later.
        Rejected = "rejected",
        /// Applied later by `replay --rejected`, or moved into another spool.
        Replayed = "replayed",
    }
}

word_enum! {
    /// Where an incident statusrelay opens is (`incidents.status`).
    IncidentStatus {
        /// The intent is committed; the request that opens it may or may not have reached the page.
        Opening = "opening",
        /// On the page, with its id.
        Open = "open",
        /// The request resolving it is under way.
        Resolving = "resolving",
        /// Resolved on the page.
        Resolved = "resolved",
        /// Gone from the page (deleted by a person) or never confirmed; nothing left to do.
        Lost = "lost",
    }
}
