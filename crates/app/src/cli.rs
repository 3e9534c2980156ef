//! The command line, as clap definitions (kept in the library so man pages and completions can
//! be generated from the same source).
//!
//! Invariant: every subcommand's arguments are wrapped in [`Lazy`], so a run builds only the
//! arguments of the subcommand it runs. Monit spawns `statusrelay monit` once per event, and
//! building all subcommands' arguments was a sixth of the handler's CPU time.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand};
use statusrelay_core::State;

#[derive(Debug, Parser)]
#[command(
    name = "statusrelay",
    version,
    about = "Keep a public status page true to what Monit on each node knows",
    after_help = "Exit codes: 0 ok, 64 usage, 65 bad event data (recorded for replay), 69 status page or listen address unavailable,\n74 spool I/O error, 75 temporary failure (retry later), 78 configuration error."
)]
pub struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// `--config`: the last one given on the command line (before or after the subcommand),
    /// else `STATUSRELAY_CONFIG`.
    pub fn config(&self) -> Option<PathBuf> {
        self.command.given().config.or(self.common.config.clone())
    }

    /// `--log-level`: the last one given on the command line, else `STATUSRELAY_LOG`, else info.
    pub fn log_level(&self) -> String {
        (self.command.given().log_level).unwrap_or_else(|| self.common.log_level.clone())
    }
}

// The options every command takes, before or after the subcommand's name. (A plain comment: a
// doc comment here would become the about text of every command it is flattened into.)
//
// Not clap's `global = true`: that copies them into every subcommand on every start, a twelfth
// of the handler's CPU. Each subcommand adds them with its own arguments instead, deferred by
// [`Lazy`], and keeps only what was typed after its name ([`Given`]); the top level keeps the
// rest (typed before the subcommand, the environment, the default).
#[derive(Debug, Args)]
pub struct Common {
    /// Config file [default: /etc/statusrelay/config.toml, else built-in defaults]
    #[arg(long, env = "STATUSRELAY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log level on stderr: error, warn, info, debug
    #[arg(
        long,
        env = "STATUSRELAY_LOG",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub log_level: String,
}

/// The [`Common`] options typed on the command line after a subcommand's name.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub config: Option<PathBuf>,
    pub log_level: Option<String>,
}

impl Given {
    fn from_matches(m: &ArgMatches) -> Given {
        let typed = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
        Given {
            config: m
                .get_one::<PathBuf>("config")
                .filter(|_| typed("config"))
                .cloned(),
            log_level: m
                .get_one::<String>("log_level")
                .filter(|_| typed("log_level"))
                .cloned(),
        }
    }

    /// This level's options over the outer level's (the one typed last wins).
    fn over(&self, outer: &Given) -> Given {
        Given {
            config: self.config.clone().or_else(|| outer.config.clone()),
            log_level: self.log_level.clone().or_else(|| outer.log_level.clone()),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record a Monit exec event from MONIT_* variables (run by Monit; never touches the network)
    Monit(Lazy<MonitArgs>),
    /// Record a state for a component from any other agent, cron job or person
    Event(Lazy<EventArgs>),
    /// Deliver queued states to the status page (until SIGTERM, or once with --once)
    Flush(Lazy<FlushArgs>),
    /// List pending, in-flight and dead-lettered deliveries and rejected events
    Queue(Lazy<QueueArgs>),
    /// Queue health, flusher liveness and each component's state
    Status(Lazy<StatusArgs>),
    /// Make queued or dead-lettered deliveries due now, or re-apply rejected events
    Replay(Lazy<ReplayArgs>),
    /// Print the Monit checks for every [[check]] in the config (or write them to --dir)
    MonitConfig(Lazy<MonitConfigArgs>),
    /// Local maintenance windows: hold a component's updates (and incidents) during a deploy
    Maintenance(Lazy<MaintenanceArgs>),
    /// Read Monit's own status (its HTTP interface) and record every real difference
    Resync(Lazy<ResyncArgs>),
    /// Validate the config; with --online also the API, the token and every component
    Check(Lazy<CheckArgs>),
    /// The nodes that report to this aggregator: list them, add one (prints its secret once), forget one
    Nodes(Lazy<NodesArgs>),
    /// The fleet's aggregator: take every node's reports and deliver the page, alone (until SIGTERM)
    Serve(Lazy<ServeArgs>),
    /// The aggregator's PostgreSQL store ([store]): copy an aggregator's SQLite spool into it
    Store(Lazy<StoreArgs>),
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub action: StoreAction,
}

#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Copy this aggregator's SQLite spool into the empty PostgreSQL store of [store] (stop serve first)
    Migrate(Lazy<StoreMigrateArgs>),
}

#[derive(Debug, Args)]
pub struct StoreMigrateArgs {
    /// The spool to copy (default: the config's spool)
    #[arg(long, value_name = "SPOOL")]
    pub from: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen here instead of [serve] listen (e.g. 127.0.0.1:8731)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Also write Prometheus metrics for the aggregator's flusher here
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct NodesArgs {
    #[command(subcommand)]
    pub action: Option<NodesAction>,
    /// With no action, list the nodes as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum NodesAction {
    /// Add a node: creates its credential, stores only its hash, prints the secret once
    Add(Lazy<NodesAddArgs>),
    /// Forget a decommissioned node: its failures are cleared and it no longer counts
    Forget(Lazy<NodesForgetArgs>),
}

#[derive(Debug, Args)]
pub struct NodesAddArgs {
    /// The node's name (its identity: reports from it are recorded under this host name)
    pub name: String,
    /// Limit the node to these components (repeat for several); default: any
    #[arg(long = "component", value_name = "NAME")]
    pub components: Vec<String>,
    /// Take the secret from this file instead of making one (a config manager that holds the
    /// secrets): nothing is printed, an unchanged node is left alone, a changed secret or
    /// component list replaces the old one. The secret must carry at least 128 bits by a
    /// simple estimate (its length times log2 of the characters it uses): make one with
    /// `openssl rand -hex 32`
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct NodesForgetArgs {
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceAction {
    /// Start a window: updates of the component are held until it ends
    Start(Lazy<MaintenanceStartArgs>),
    /// End the active windows of a component (or all), delivering what was held
    Stop(Lazy<MaintenanceStopArgs>),
    /// Active windows (with --all, ended ones too)
    List(Lazy<MaintenanceListArgs>),
}

#[derive(Debug, Args)]
pub struct MonitArgs {
    /// Component to update (its name or slug), instead of routing by the service name
    #[arg(long, value_name = "NAME")]
    pub component: Option<String>,
    /// Words Monit split off an exec line ("--component db cluster" arrives as "--component db"
    /// and "cluster"). Accepted so the event is still recorded (rejected, exit 64), never lost.
    #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub stray: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EventArgs {
    #[arg(long, value_name = "NAME")]
    pub component: String,
    /// operational, performance_issues, partial_outage, major_outage, under_maintenance, unknown
    #[arg(long, value_name = "STATE")]
    pub status: State,
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// Who reports it; each source's state is kept apart and the component shows the worst
    #[arg(long, value_name = "ID", default_value = "manual")]
    pub source: String,
}

#[derive(Debug, Args)]
pub struct FlushArgs {
    /// Deliver what is due, then exit: 0 if nothing is pending, 75 if something still is
    #[arg(long)]
    pub once: bool,
    /// Write Prometheus metrics to this file (node_exporter textfile collector), atomically
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Delivery ids (12) or rejected event ids (e7), as `queue` shows them
    pub ids: Vec<String>,
    /// Include dead-lettered deliveries
    #[arg(long)]
    pub dead: bool,
    /// Re-apply events that were rejected (unknown service, broken config...) with the current config
    #[arg(long)]
    pub rejected: bool,
    /// With --rejected: take the rejected events from this other spool file (where the handler
    /// kept them while the config was broken) into the configured spool, or the PostgreSQL store
    #[arg(long, value_name = "SPOOL", requires = "rejected")]
    pub from: Option<std::path::PathBuf>,
    /// Only this component
    #[arg(long, value_name = "NAME")]
    pub component: Option<String>,
    /// Re-send the latest state of each component changed within DURATION (e.g. 2h), even if the page showed it
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Show what would be replayed; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct MonitConfigArgs {
    /// Write one file per check here (e.g. /etc/monit/conf.d), removing checks dropped from the config
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The statusrelay binary Monit runs
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/statusrelay")]
    pub bin: String,
    /// systemd unit of the flusher, for the check that watches it
    #[arg(long, value_name = "UNIT", default_value = "statusrelay")]
    pub flusher_unit: String,
    /// With --dir: change nothing; exit 0 if the directory matches the config, 1 if not
    #[arg(long, requires = "dir")]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    #[command(subcommand)]
    pub action: MaintenanceAction,
}

#[derive(Debug, Args)]
pub struct ResyncArgs {
    /// Show the differences; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(long)]
    pub online: bool,
}

#[derive(Debug, Args)]
pub struct MaintenanceStartArgs {
    #[arg(long, value_name = "NAME")]
    pub component: String,
    /// How long, e.g. 30m (it ends by itself)
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: String,
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Show the component as under_maintenance on the page while it lasts
    #[arg(long)]
    pub show: bool,
}

#[derive(Debug, Args)]
pub struct MaintenanceStopArgs {
    #[arg(long, value_name = "NAME")]
    pub component: Option<String>,
}

#[derive(Debug, Args)]
pub struct MaintenanceListArgs {
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

/// A subcommand's arguments and the [`Common`] options, added to its `clap::Command` only when
/// that subcommand is parsed (`Command::defer`). Reads as the arguments themselves through
/// `Deref`.
#[derive(Debug)]
pub struct Lazy<T> {
    pub args: T,
    /// The common options typed after this subcommand's name.
    pub given: Given,
}

impl<T> std::ops::Deref for Lazy<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.args
    }
}

impl<T: FromArgMatches> FromArgMatches for Lazy<T> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Lazy {
            args: T::from_arg_matches(m)?,
            given: Given::from_matches(m),
        })
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        self.given = Given::from_matches(m);
        self.args.update_from_arg_matches(m)
    }
}

impl<T: Args> Args for Lazy<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.defer(|c| Common::augment_args(T::augment_args(c)))
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        cmd.defer(|c| Common::augment_args(T::augment_args_for_update(c)))
    }
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
}

impl Command {
    /// The common options typed after the subcommand's name (and its action's, for maintenance).
    fn given(&self) -> Given {
        let g = match self {
            Command::Monit(a) => &a.given,
            Command::Event(a) => &a.given,
            Command::Flush(a) => &a.given,
            Command::Queue(a) => &a.given,
            Command::Status(a) => &a.given,
            Command::Replay(a) => &a.given,
            Command::MonitConfig(a) => &a.given,
            Command::Resync(a) => &a.given,
            Command::Check(a) => &a.given,
            Command::Serve(a) => &a.given,
            Command::Store(a) => {
                return match &a.action {
                    StoreAction::Migrate(x) => x.given.over(&a.given),
                };
            }
            Command::Nodes(a) => {
                return match &a.action {
                    Some(NodesAction::Add(x)) => x.given.over(&a.given),
                    Some(NodesAction::Forget(x)) => x.given.over(&a.given),
                    None => a.given.clone(),
                };
            }
            Command::Maintenance(a) => {
                let inner = match &a.action {
                    MaintenanceAction::Start(x) => &x.given,
                    MaintenanceAction::Stop(x) => &x.given,
                    MaintenanceAction::List(x) => &x.given,
                };
                return inner.over(&a.given);
            }
        };
        g.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_subcommand_once_built_is_consistent() {
        // debug_assert builds every deferred subcommand, so a bad attribute in any is caught here.
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommand_arguments_are_built_only_when_that_subcommand_runs() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            assert_eq!(
                sub.get_arguments().count(),
                0,
                "{} builds its arguments eagerly: wrap them in Lazy",
                sub.get_name()
            );
        }
    }

    #[test]
    fn deferred_arguments_parse_reject_and_see_global_options() {
        let cli = Cli::try_parse_from(["statusrelay", "monit", "--component", "db"]).unwrap();
        assert!(matches!(&cli.command, Command::Monit(a) if a.component.as_deref() == Some("db")));
        let e = Cli::try_parse_from(["statusrelay", "queue", "--bogus"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
        let e = Cli::try_parse_from(["statusrelay", "maintenance", "start", "--component", "db"])
            .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let cli = Cli::try_parse_from(["statusrelay", "status", "--config", "x.toml"]).unwrap();
        assert_eq!(cli.config(), Some(PathBuf::from("x.toml")));
    }

    /// (command line, --config, --log-level) as the commands see them.
    fn common(args: &[&str]) -> (Option<PathBuf>, String) {
        let cli = Cli::try_parse_from(std::iter::once("statusrelay").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        (cli.config(), cli.log_level())
    }

    #[test]
    fn common_options_work_before_and_after_the_subcommand_and_the_last_one_typed_wins() {
        let c = |s: &str| Some(PathBuf::from(s));
        assert_eq!(common(&["monit"]), (None, "info".into()));
        assert_eq!(common(&["--config", "a", "monit"]), (c("a"), "info".into()));
        assert_eq!(common(&["monit", "--config", "b"]), (c("b"), "info".into()));
        assert_eq!(
            common(&["--config", "a", "monit", "--config", "b"]),
            (c("b"), "info".into())
        );
        // The subcommand's own default must not hide what was typed before the subcommand.
        assert_eq!(
            common(&["--log-level", "debug", "--config", "a", "flush", "--once"]),
            (c("a"), "debug".into())
        );
        assert_eq!(
            common(&["--log-level", "debug", "queue", "--log-level", "warn"]),
            (None, "warn".into())
        );
        // Two levels of subcommands: the innermost typed value wins, then the next one out.
        let start = ["start", "--component", "db", "--for", "5m"];
        let args = |pre: &[&'static str], mid: &[&'static str], post: &[&'static str]| {
            let mut v = pre.to_vec();
            v.push("maintenance");
            v.extend_from_slice(mid);
            v.extend_from_slice(&start);
            v.extend_from_slice(post);
            v
        };
        assert_eq!(common(&args(&["--config", "r"], &[], &[])).0, c("r"));
        assert_eq!(
            common(&args(&["--config", "r"], &["--config", "m"], &[])).0,
            c("m")
        );
        assert_eq!(
            common(&args(
                &["--config", "r"],
                &["--config", "m"],
                &["--config", "s"]
            ))
            .0,
            c("s")
        );
        assert_eq!(
            common(&args(&[], &["--log-level", "debug"], &[])),
            (None, "debug".into())
        );
    }
}
