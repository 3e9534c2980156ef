-- statusrelay spool, schema 6: the fleet's page through everyday operations.

-- Local sources (maintenance windows, `statusrelay event --source`) are named with an '@',
-- which no node's name may hold, so a node's word can never clear or count as them. Rows
-- written before are renamed (not where a node of that very name exists: those are its own).
UPDATE tests SET host = '@' || host
 WHERE service = '-' AND test IN ('maintenance', 'manual') AND substr(host, 1, 1) <> '@'
   AND host NOT IN (SELECT name FROM nodes);

-- Who speaks for a node: the reporter (a relaying spool's id, or a Monit's id and
-- incarnation) whose sequence the node's marks are in, from which peer; the one it replaced
-- or that contends with it; since when two live reporters alternate (a conflict).
ALTER TABLE nodes ADD COLUMN reporter TEXT;
ALTER TABLE nodes ADD COLUMN reporter_peer TEXT;
ALTER TABLE nodes ADD COLUMN rival TEXT;
ALTER TABLE nodes ADD COLUMN rival_peer TEXT;
ALTER TABLE nodes ADD COLUMN rival_seen_at INTEGER;
ALTER TABLE nodes ADD COLUMN conflict_since INTEGER;
-- The last report of the node the aggregator did not take, as the node was told, and how
-- many it did not take in all.
ALTER TABLE nodes ADD COLUMN refused TEXT;
ALTER TABLE nodes ADD COLUMN refused_at INTEGER;
ALTER TABLE nodes ADD COLUMN refusals INTEGER NOT NULL DEFAULT 0;

-- A node's failing services that no component takes: shown by `nodes`, never dropped unsaid.
CREATE TABLE unrouted (
    node     TEXT    NOT NULL,
    service  TEXT    NOT NULL,
    tests    TEXT    NOT NULL,   -- the failing test families, comma-separated
    since    INTEGER NOT NULL,
    PRIMARY KEY (node, service)
) WITHOUT ROWID;

-- A relaying node's reporter id: random, made once, kept for the spool's life.
ALTER TABLE relay ADD COLUMN reporter TEXT;
