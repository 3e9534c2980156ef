-- statusrelay's PostgreSQL store, schema 2: the nodes' credentials (the seam's first part,
-- statusrelay_core::store::NodeCredentials), as the SQLite spool keeps them: a node's name,
-- the SHA-256 of its secret (never the secret), the components it may feed (NULL: any).
CREATE TABLE nodes (
    name           TEXT        PRIMARY KEY,
    secret_sha256  TEXT        NOT NULL,
    components     TEXT[],
    added_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Moves with every change of a credential and with nothing else, whichever instance makes it:
-- an instance reloads its credentials only when it moved.
CREATE TABLE credentials_version (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    v   BIGINT  NOT NULL
);
INSERT INTO credentials_version (id, v) VALUES (1, 0);

CREATE FUNCTION credentials_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE credentials_version SET v = v + 1 WHERE id = 1;
    RETURN NULL;
END $$;

-- Row triggers: an INSERT ... ON CONFLICT that changes no row moves nothing.
CREATE TRIGGER nodes_added AFTER INSERT OR DELETE ON nodes
    FOR EACH ROW EXECUTE FUNCTION credentials_moved();
CREATE TRIGGER nodes_rekeyed AFTER UPDATE OF name, secret_sha256, components ON nodes
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name
                       OR OLD.secret_sha256 IS DISTINCT FROM NEW.secret_sha256
                       OR OLD.components IS DISTINCT FROM NEW.components)
    EXECUTE FUNCTION credentials_moved();
