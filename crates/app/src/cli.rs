//! The command line, as clap definitions (kept in the library so man pages and completions can
//! be generated from the same source).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use statusrelay_core::State;

#[derive(Debug, Parser)]
#[command(
    name = "statusrelay",
    version,
    about = "Keep a public status page true to what Monit on each node knows",
    after_help = "Exit codes: 0 ok, 64 usage, 65 bad event data (recorded for replay), 69 status page unavailable,\n74 spool I/O error, 75 temporary failure (retry later), 78 configuration error."
)]
pub struct Cli {
    /// Config file [default: /etc/statusrelay/config.toml, else built-in defaults]
    #[arg(long, global = true, env = "STATUSRELAY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log level on stderr: error, warn, info, debug
    #[arg(
        long,
        global = true,
        env = "STATUSRELAY_LOG",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record a Monit exec event from MONIT_* variables (run by Monit; never touches the network)
    Monit {
        /// Component to update, instead of routing by the service name
        #[arg(long, value_name = "NAME")]
        component: Option<String>,
    },
    /// Record a state for a component from any other agent, cron job or person
    Event {
        #[arg(long, value_name = "NAME")]
        component: String,
        /// operational, performance_issues, partial_outage, major_outage, under_maintenance, unknown
        #[arg(long, value_name = "STATE")]
        status: State,
        #[arg(long, value_name = "TEXT")]
        message: Option<String>,
        /// Who reports it; each source's state is kept apart and the component shows the worst
        #[arg(long, value_name = "ID", default_value = "manual")]
        source: String,
    },
    /// Deliver queued states to the status page (until SIGTERM, or once with --once)
    Flush {
        /// Deliver what is due, then exit: 0 if nothing is pending, 75 if something still is
        #[arg(long)]
        once: bool,
        /// Write Prometheus metrics to this file (node_exporter textfile collector), atomically
        #[arg(long, value_name = "PATH")]
        metrics_file: Option<PathBuf>,
    },
    /// List pending, in-flight and dead-lettered deliveries and rejected events
    Queue {
        #[arg(long)]
        json: bool,
    },
    /// Queue health, flusher liveness and each component's state
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Make queued or dead-lettered deliveries due now, or re-apply rejected events
    Replay {
        /// Delivery ids (12) or rejected event ids (e7), as `queue` shows them
        ids: Vec<String>,
        /// Include dead-lettered deliveries
        #[arg(long)]
        dead: bool,
        /// Re-apply events that were rejected (unknown service, broken config...) with the current config
        #[arg(long)]
        rejected: bool,
        /// Only this component
        #[arg(long, value_name = "NAME")]
        component: Option<String>,
        /// Re-send the latest state of each component changed within DURATION (e.g. 2h), even if the page showed it
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// Show what would be replayed; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the Monit checks for every [[check]] in the config (or write them to --dir)
    MonitConfig {
        /// Write one file per check here (e.g. /etc/monit/conf.d), removing checks dropped from the config
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The statusrelay binary Monit runs
        #[arg(long, value_name = "PATH", default_value = "/usr/bin/statusrelay")]
        bin: String,
        /// systemd unit of the flusher, for the check that watches it
        #[arg(long, value_name = "UNIT", default_value = "statusrelay")]
        flusher_unit: String,
        /// With --dir: change nothing; exit 0 if the directory matches the config, 1 if not
        #[arg(long, requires = "dir")]
        check: bool,
    },
    /// Local maintenance windows: hold a component's updates (and incidents) during a deploy
    Maintenance {
        #[command(subcommand)]
        action: MaintenanceAction,
    },
    /// Read Monit's own status (its HTTP interface) and record every real difference
    Resync {
        /// Show the differences; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Validate the config; with --online also the API, the token and every component
    Check {
        #[arg(long)]
        online: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceAction {
    /// Start a window: updates of the component are held until it ends
    Start {
        #[arg(long, value_name = "NAME")]
        component: String,
        /// How long, e.g. 30m (it ends by itself)
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Show the component as under_maintenance on the page while it lasts
        #[arg(long)]
        show: bool,
    },
    /// End the active windows of a component (or all), delivering what was held
    Stop {
        #[arg(long, value_name = "NAME")]
        component: Option<String>,
    },
    /// Active windows (with --all, ended ones too)
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}
