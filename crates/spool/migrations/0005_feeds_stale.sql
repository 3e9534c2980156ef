-- statusrelay spool, schema 5: what each node feeds and how new its word on it is; nodes that
-- went silent; a relaying node's flusher run.

-- One row per (node, component) the node reports on, passing or not: the component's nodes
-- (`major_at = "all"` counts them, a stale node's policy applies to them), and the newest
-- report applied there, ordered by (epoch, seq), so an older report never overrides a newer
-- one about the same component.
CREATE TABLE feeds (
    node       TEXT    NOT NULL,
    component  TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    since      INTEGER NOT NULL,
    stale      INTEGER NOT NULL DEFAULT 0,   -- the node's staleness, kept here too, so "does a
                                             -- stale node feed this component" is one lookup
    PRIMARY KEY (node, component)
) WITHOUT ROWID;
CREATE INDEX feeds_component ON feeds (component);
CREATE INDEX feeds_stale ON feeds (component) WHERE stale;

-- nodes.(epoch, last_seq): the newest whole-node report applied (a status document, a relay's
-- snapshot). stale_since: when the node was found silent for too many periods; NULL while it
-- reports.
ALTER TABLE nodes ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN stale_since INTEGER;

-- A relaying node's side: its flusher run (grows at every start) and whether a full snapshot
-- is owed to the aggregator (at start, after `resync`).
CREATE TABLE relay (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    epoch         INTEGER NOT NULL,
    snapshot_due  INTEGER NOT NULL DEFAULT 1
);

-- The stale nodes are found through this, not by scanning every node. Partial: only stale
-- nodes are in it. (Tests get no index of their own: a node's spool writes them at every
-- event, and an index page more per failure is a page more to write and sync.)
CREATE INDEX nodes_stale ON nodes (name) WHERE stale_since IS NOT NULL;
