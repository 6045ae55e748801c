//! What the engine's test harnesses share: compiling rule files given as (name, text) pairs
//! under a configuration's limits.

use crate::config::Config;
use crate::rules::Limits;
use crate::rules::Rules;

/// Compiles `files` under `config`'s rule limits; panics on a compile error (a test bug).
pub(crate) fn rules(config: &Config, files: &[(&str, &str)]) -> Rules {
    let sources = files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    Rules::from_sources(Limits::from(&config.rules), sources).unwrap()
}
