-- statusrelay's PostgreSQL store, schema 4: when each node was last heard, on the database's
-- clock. Several instances take reports, each remembering only its own: the writer judges
-- silence from this column (`silent_nodes`), one clock for every instance, whatever theirs
-- say. `last_seen_at` stays what the operator is shown (the recording instance's clock).
ALTER TABLE nodes ADD COLUMN heard_at TIMESTAMPTZ;
