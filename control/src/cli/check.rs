//! The configuration check shared by `xpptp config check` and `xpptp-control --check`:
//! load the native file or a Poptop install, report what was understood and every
//! warning, never a secret.

use std::io::Write;
use std::path::Path;

use crate::config::{self, ConfigError, Loaded};

/// Where the configuration comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The native TOML file.
    Native(&'a Path),
    /// A Poptop install: its pptpd.conf (and the options file it names) and chap-secrets
    /// (default /etc/ppp/chap-secrets).
    Poptop {
        /// pptpd.conf.
        pptpd_conf: &'a Path,
        /// chap-secrets.
        chap_secrets: Option<&'a Path>,
    },
}

/// Loads the configuration from `source`.
pub fn load(source: Source<'_>) -> Result<Loaded, ConfigError> {
    match source {
        Source::Native(path) => config::load_native(path),
        Source::Poptop {
            pptpd_conf,
            chap_secrets,
        } => config::load_poptop(pptpd_conf, None, chap_secrets),
    }
}

/// Writes the summary of what was understood to `out`, the warnings to `err`, and the
/// verdict line to `out`.
pub fn report(loaded: &Loaded, out: &mut impl Write, err: &mut impl Write) -> std::io::Result<()> {
    write!(out, "{loaded}")?;
    for warning in &loaded.warnings {
        writeln!(err, "warning: {warning}")?;
    }
    writeln!(
        out,
        "configuration OK ({} warning{})",
        loaded.warnings.len(),
        if loaded.warnings.len() == 1 { "" } else { "s" }
    )
}
