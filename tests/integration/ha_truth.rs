//! Issue 23: the fleet's truth tests (issue 20's everyday operations: Monit reloaded, a node
//! reinstalled, the aggregator restarted, clocks stepped, every node silent...) run again on
//! the PostgreSQL store, each on a cluster of its own: the page stays as true as on the spool.
//! Without a PostgreSQL server they are skipped with a message, except under `CI=true`.

use statusrelay_testkit::postgres::Postgres;

use crate::fleet_truth as truth;

/// `test` on the PostgreSQL store of a cluster of its own.
fn on_postgresql(name: &str, test: fn(Option<&str>)) {
    let Some(pg) = Postgres::for_test(name) else {
        return;
    };
    test(Some(&pg.url()));
}

#[test]
fn monit_reload_restart_and_unmonitor_never_show_a_false_recovery_on_postgresql() {
    on_postgresql("truth-reload", truth::reload_on);
}

#[test]
fn a_reinstalled_node_is_heard_at_once_and_a_copied_one_is_a_conflict_on_postgresql() {
    on_postgresql("truth-reinstall", truth::reinstall_on);
}

#[test]
fn an_aggregator_restarted_after_a_long_stop_flashes_nothing_on_postgresql() {
    on_postgresql("truth-restart", truth::restart_on);
}

#[test]
fn a_node_named_like_a_local_source_clears_nothing_on_postgresql() {
    on_postgresql("truth-names", truth::names_on);
}

#[test]
fn an_aggregators_page_speaks_monits_words_never_its_own_on_postgresql() {
    on_postgresql("truth-words", truth::words_on);
}

#[test]
fn show_nodes_names_the_nodes_on_the_page_on_postgresql() {
    on_postgresql("truth-show-nodes", truth::show_nodes_on);
}

#[test]
fn forgetting_a_node_that_reports_leaves_nothing_behind_on_postgresql() {
    on_postgresql("truth-forget", truth::forget_on);
}

#[test]
fn the_aggregators_clock_stepping_neither_flashes_nor_hides_a_node_on_postgresql() {
    on_postgresql("truth-step", truth::clock_step_on);
}

#[test]
fn every_node_silent_is_unknown_whatever_the_stale_policy_on_postgresql() {
    on_postgresql("truth-silent", truth::all_silent_on);
}

#[test]
fn a_node_from_the_future_is_told_and_a_switch_to_monit_alone_is_heard_on_postgresql() {
    on_postgresql("truth-future", truth::future_on);
}
