//! The configuration flags every service binary shares.

use clap::Args;

/// The configuration flags every service binary takes (oslo.config's `--config-file`, plus the
/// settings most often overridden), for `#[command(flatten)]` into a clap parser.
///
/// Files are read in order, then `OS_<SECTION>__<KEY>` variables, then these flags: each overrides
/// what comes before.
///
/// ```
/// use clap::Parser;
/// use rpc_runtime::cli::ConfigArgs;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     config: ConfigArgs,
/// }
///
/// let cli = Cli::parse_from(["svc", "--host", "node7", "--set", "DEFAULT.report_interval=5"]);
/// let config = cli.config.loader().load().unwrap().config;
/// assert_eq!(config.host.as_deref(), Some("node7"));
/// assert_eq!(config.report_interval, std::time::Duration::from_secs(5));
/// ```
///
/// The flags are global: flattened into a command, they are also accepted after its
/// subcommands.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// An oslo.config INI file (nova.conf); repeat for more, later ones win.
    #[arg(long = "config-file", value_name = "PATH", global = true)]
    pub config_files: Vec<std::path::PathBuf>,
    /// `[DEFAULT] host`: this node's name.
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// `[DEFAULT] transport_url`: `rabbit://user:pass@host:5672/vhost` or `memory://`.
    #[arg(long, global = true)]
    pub transport_url: Option<String>,
    /// `[database] connection`: `sqlite:services.sqlite`, `postgres://…`, `mysql://…`.
    #[arg(long, global = true)]
    pub database_connection: Option<String>,
    /// Any option, as `SECTION.KEY=VALUE` (`--set DEFAULT.report_interval=5`); repeatable.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE", value_parser = parse_setting, global = true)]
    pub settings: Vec<(String, String, String)>,
}

impl ConfigArgs {
    /// A loader over the files, this process's environment, then the flags.
    pub fn loader(&self) -> crate::config::ConfigLoader {
        let mut loader = crate::config::ConfigLoader::new();
        for file in &self.config_files {
            loader = loader.file(file);
        }
        loader = loader.process_env();
        for (section, key, value) in &self.settings {
            loader = loader.set(section, key, value);
        }
        let flags = [
            ("DEFAULT", "host", &self.host),
            ("DEFAULT", "transport_url", &self.transport_url),
            ("database", "connection", &self.database_connection),
        ];
        for (section, key, value) in flags {
            if let Some(value) = value {
                loader = loader.set(section, key, value);
            }
        }
        loader
    }
}

/// `SECTION.KEY=VALUE` → its three parts.
fn parse_setting(text: &str) -> Result<(String, String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected SECTION.KEY=VALUE, not `{text}`"))?;
    let (section, key) = name
        .split_once('.')
        .filter(|(s, k)| !s.is_empty() && !k.is_empty())
        .ok_or_else(|| format!("expected SECTION.KEY=VALUE, not `{text}`"))?;
    Ok((section.to_owned(), key.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_section_key_value() {
        assert_eq!(
            parse_setting("DEFAULT.host=a=b"),
            Ok(("DEFAULT".into(), "host".into(), "a=b".into()))
        );
        assert!(parse_setting("host=a").is_err());
        assert!(parse_setting(".host=a").is_err());
        assert!(parse_setting("DEFAULT.host").is_err());
    }
}
