-- statusrelay spool, schema 8: the aggregator checks credentials in memory, before it reads a
-- request's body or takes the spool; it reloads them when this number moves.

-- Bumped by every change of a node's credential or allowed components (`nodes add`,
-- `nodes forget`, a re-keyed `--secret-file`), whatever process makes it; never by a report.
CREATE TABLE credentials_version (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    v   INTEGER NOT NULL
);
INSERT INTO credentials_version (id, v) VALUES (1, 0);
CREATE TRIGGER nodes_added AFTER INSERT ON nodes
BEGIN UPDATE credentials_version SET v = v + 1 WHERE id = 1; END;
CREATE TRIGGER nodes_removed AFTER DELETE ON nodes
BEGIN UPDATE credentials_version SET v = v + 1 WHERE id = 1; END;
CREATE TRIGGER nodes_rekeyed AFTER UPDATE OF name, secret_sha256, components ON nodes
BEGIN UPDATE credentials_version SET v = v + 1 WHERE id = 1; END;
