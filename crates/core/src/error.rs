//! The one error type of the core crate.

use std::path::PathBuf;

/// Everything that can be wrong with a config file or an incoming event.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The config file could not be read (missing, unreadable).
    #[error("cannot read config {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or does not fit the schema; `message` names line and key.
    #[error("config {path}: {message}")]
    ConfigParse { path: PathBuf, message: String },
    /// A value in an otherwise well-formed config is invalid.
    #[error("config {path}: {key}: {message}")]
    ConfigInvalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// The environment has no MONIT_* variable at all: the command was not run by Monit.
    #[error(
        "no MONIT_* variables in the environment: `statusrelay monit` is meant to be run by a Monit exec action (use `statusrelay event` from scripts)"
    )]
    NotFromMonit,
    /// A MONIT_* variable the handler needs is missing or empty.
    #[error(
        "{0} is not set or empty: the event cannot be mapped (it was recorded; see `statusrelay queue`)"
    )]
    MissingVar(&'static str),
    /// A MONIT_* variable that must name something is not valid UTF-8.
    #[error(
        "{0} is not valid UTF-8: the event cannot be mapped (it was recorded with the bad bytes replaced)"
    )]
    InvalidUtf8(String),
    /// The event string is neither in the mapping table nor matched by the pairing rule.
    #[error(
        "unknown Monit event {0:?}: not in the mapping table (it was recorded; add a mapping or report it)"
    )]
    UnknownEvent(String),
    /// The service is routed to no configured component.
    #[error(
        "service {service:?} matches no [[component]] in the config: add it to a component's `services` or pass --component (the event was recorded)"
    )]
    Unrouted { service: String },
    /// A component named on the command line is not in the config.
    #[error("no component named {0:?} in the config (see `statusrelay check`)")]
    UnknownComponent(String),
    /// `statusrelay monit` got words it does not take: Monit split an exec line on whitespace.
    #[error(
        "unexpected arguments {0:?}: Monit splits exec lines on whitespace, so a component name with spaces arrives in pieces; name the component by its slug (`statusrelay monit-config` writes it) and then `statusrelay replay --rejected` (the event was recorded)"
    )]
    StrayArguments(Vec<String>),
    /// A state name is not one of the documented states.
    #[error(
        "unknown state {0:?}: expected one of operational, performance_issues, partial_outage, major_outage, under_maintenance, unknown"
    )]
    BadState(String),
    /// Monit's status document could not be understood.
    #[error("Monit status XML: {0}")]
    MonitXml(String),
    /// A duration is not of the form 30s, 5m, 2h, 7d.
    #[error("invalid duration {0:?}: use a number with a unit, e.g. 90s, 5m, 2h, 7d")]
    BadDuration(String),
}

impl CoreError {
    /// Is this a problem with the configuration (exit 78) rather than with the input (exit 65)?
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            CoreError::ConfigRead { .. }
                | CoreError::ConfigParse { .. }
                | CoreError::ConfigInvalid { .. }
        )
    }

    /// Is this a problem with the command line rather than with data or config (exit 64)?
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            CoreError::NotFromMonit
                | CoreError::UnknownComponent(_)
                | CoreError::StrayArguments(_)
                | CoreError::BadState(_)
                | CoreError::BadDuration(_)
        )
    }
}
