-- statusrelay spool, schema 9: a component's failing tests by state, so the worst of them is
-- found by a few index seeks (one per state, the worst first) instead of reading every failing
-- test of the component at every recompute: an aggregator recomputes a component at each
-- report, and a component of a large fleet has a failing test per failing node. The index
-- holds the host too (the table's key), so a stale host's rows are passed over in the index.
CREATE INDEX tests_failing ON tests (component, state) WHERE state IS NOT NULL;
