//! `--config FILE`: `serve` (and `warm`) settings from a TOML file.
//!
//! clap stays the one definition of every setting. A file key is a flag's long name without
//! the leading `--` (`memory-capacity = "1GiB"`); repeatable flags take arrays, on/off flags
//! booleans. The command line is parsed once to learn which settings a flag or an environment
//! variable already gave; every other setting found in the file is then appended to the
//! command line as `--key=value` and the whole line is parsed again, so a file value goes
//! through exactly the validation of a flag. Precedence: flags, then environment variables,
//! then the file, then built-in defaults.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, Parser};

/// Id (and long name) of the argument naming the config file.
pub const CONFIG_ARG: &str = "config";

/// Why the command line could not be turned into settings.
#[derive(Debug)]
pub enum CliError {
    /// The flags themselves (including `--help` and `--version`, which clap reports this way).
    Clap(clap::Error),
    /// The config file: unreadable, not TOML, an unknown key or a bad value.
    File(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Clap(e) => write!(f, "{e}"),
            CliError::File(e) => f.write_str(e),
        }
    }
}

impl From<clap::Error> for CliError {
    fn from(e: clap::Error) -> Self {
        CliError::Clap(e)
    }
}

/// Parses `argv` (program name first) into `P`, filling the settings that neither a flag nor
/// an environment variable gave from the file named by `--config` (or `S3CACHED_CONFIG`).
pub fn try_parse_from<P: Parser>(argv: impl IntoIterator<Item = impl Into<OsString>>) -> Result<P, CliError> {
    let mut argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    // First pass: only to learn which subcommand runs, where the file is and which settings
    // are already set. Constraints between flags (`requires`, `conflicts_with`) may involve
    // settings still to come from the file, so they are checked on the second pass only.
    let mut cmd = P::command().ignore_errors(true);
    let matches = cmd.try_get_matches_from_mut(&argv)?;
    let file = matches.subcommand().and_then(|(name, sub_matches)| {
        let path = sub_matches.try_get_one::<PathBuf>(CONFIG_ARG).ok().flatten()?;
        Some((cmd.find_subcommand(name)?, sub_matches, path))
    });
    let Some((sub_cmd, sub_matches, path)) = file else {
        return strict(&argv);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::File(format!("cannot read config file {}: {e}", path.display())))?;
    let extra = file_args(sub_cmd, sub_matches, &text).map_err(|e| CliError::File(e.in_file(path)))?;
    // Before a `--`, so that the values are never taken for positional arguments.
    let at = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    argv.splice(at..at, extra.into_iter().map(OsString::from));
    strict(&argv)
}

/// The plain clap parse of `argv`, every check included.
fn strict<P: Parser>(argv: &[OsString]) -> Result<P, CliError> {
    Ok(P::try_parse_from(argv)?)
}

/// A problem with one place of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl FileError {
    fn in_file(&self, path: &Path) -> String {
        match self.line {
            Some(line) => format!("config file {}, line {line}: {}", path.display(), self.message),
            None => format!("config file {}: {}", path.display(), self.message),
        }
    }
}

/// The flags (`--key=value`) that the config file `text` adds to a command line parsed into
/// `matches` for `cmd`: one per file value whose setting no flag or environment variable gave.
///
/// # Errors
/// The file is not TOML, has a key that is no setting of `cmd`, or a value of the wrong type
/// or that the setting's parser rejects.
pub fn file_args(cmd: &Command, matches: &ArgMatches, text: &str) -> Result<Vec<String>, FileError> {
    let line_of = |offset: usize| text.get(..offset).map_or(1, |t| t.matches('\n').count() + 1);
    let table: std::collections::BTreeMap<toml::Spanned<String>, toml::Value> =
        toml::from_str(text).map_err(|e| FileError {
            line: e.span().map(|s| line_of(s.start)),
            message: format!("not valid TOML: {}", e.message().trim_end()),
        })?;
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut out = Vec::new();
    for (key, value) in entries {
        let at = |message: String| FileError {
            line: Some(line_of(key.span().start)),
            message,
        };
        let name = key.get_ref().as_str();
        let arg = setting(cmd, name).ok_or_else(|| at(unknown_key(cmd, name)))?;
        let args = setting_args(arg, value).map_err(|m| at(format!("{name}: {m}")))?;
        let given = matches!(
            matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !given {
            out.extend(args);
        }
    }
    Ok(out)
}

/// The settings a file may hold: every named option of `cmd` but `--config` and the built-in
/// `--help`/`--version`.
pub fn settings(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| {
        !a.is_positional()
            && a.get_long().is_some()
            && !matches!(a.get_id().as_str(), CONFIG_ARG | "help" | "version")
            && !matches!(a.get_action(), ArgAction::Help | ArgAction::Version)
    })
}

fn setting<'c>(cmd: &'c Command, key: &str) -> Option<&'c Arg> {
    settings(cmd).find(|a| a.get_long() == Some(key))
}

fn unknown_key(cmd: &Command, key: &str) -> String {
    let kebab = key.replace('_', "-");
    if kebab != key && setting(cmd, &kebab).is_some() {
        return format!("unknown key {key:?} (keys are written with dashes: {kebab:?})");
    }
    format!(
        "unknown key {key:?} (keys are the names of `s3cached {} --help` flags without the leading --)",
        cmd.get_name()
    )
}

/// The command-line arguments giving `arg` the file's `value`, after checking the value's
/// type and running the flag's own parser on it.
///
/// # Errors
/// A message (without the key) saying what is wrong with the value.
pub fn setting_args(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    let long = arg.get_long().unwrap_or(arg.get_id().as_str());
    match arg.get_action() {
        ArgAction::SetTrue => match value {
            toml::Value::Boolean(true) => Ok(vec![format!("--{long}")]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            other => Err(format!(
                "expected a boolean (true or false), found {}",
                other.type_str()
            )),
        },
        ArgAction::Append => {
            let items = match value {
                toml::Value::Array(items) => items.iter().collect(),
                single => vec![single],
            };
            items
                .into_iter()
                .map(|v| {
                    let s = scalar(v)
                        .map_err(|found| format!("expected an array of strings (or a single string), found {found}"))?;
                    check_value(arg, &s)?;
                    Ok(format!("--{long}={s}"))
                })
                .collect()
        }
        _ => {
            let s = scalar(value).map_err(|found| format!("expected a string, found {found}"))?;
            check_value(arg, &s)?;
            Ok(vec![format!("--{long}={s}")])
        }
    }
}

/// A string or integer as the text a flag would carry; anything else is refused with its
/// TOML type.
fn scalar(value: &toml::Value) -> Result<String, &'static str> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        other => Err(other.type_str()),
    }
}

/// Runs `arg`'s value parser (the one its flag uses) on `value`: `arg` alone, freed from its
/// relations to other flags and from its environment variable and default.
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or(arg.get_id().as_str());
    let probe = arg
        .clone()
        .required(false)
        .global(false)
        .env(None)
        .default_value(None)
        .requires(clap::builder::Resettable::Reset)
        .conflicts_with(clap::builder::Resettable::Reset);
    Command::new("s3cached")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--{long}={value}")])
        .map(drop)
        .map_err(|e| clap_message(&e))
}

/// A clap error as one line, without the `error:` prefix and the `--help` hint.
fn clap_message(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    rendered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::CommandFactory;
    use s3cached::config::ServeConfig;

    use super::*;
    use crate::{Cli, Command as Sub, LogFormat};

    const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/s3cached.toml");

    fn serve_command() -> Command {
        let mut cmd = Cli::command();
        cmd.build();
        cmd.find_subcommand("serve").cloned().expect("a serve subcommand")
    }

    fn parse(args: &[&str]) -> Result<Cli, CliError> {
        try_parse_from(["s3cached"].iter().chain(args))
    }

    fn serve_config(cli: Cli) -> ServeConfig {
        match cli.command {
            Sub::Serve(args) => args.into_config().expect("a valid configuration"),
            other => panic!("not serve: {other:?}"),
        }
    }

    /// A config file with `text` (removed on drop).
    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut f, text.as_bytes()).expect("write temp file");
        f
    }

    fn path(f: &tempfile::NamedTempFile) -> &str {
        f.path().to_str().expect("UTF-8 temp path")
    }

    fn file_error(args: &[&str]) -> String {
        match parse(args) {
            Err(CliError::File(e)) => e,
            Err(CliError::Clap(e)) => panic!("clap error instead of a file error: {e}"),
            Ok(_) => panic!("{args:?} parsed"),
        }
    }

    /// `(key, value)` of every `key = value` line of the example, commented out or not.
    fn example_assignments() -> Vec<(String, String)> {
        let text = std::fs::read_to_string(EXAMPLE).expect("examples/s3cached.toml");
        text.lines()
            .filter_map(|l| {
                let l = l.trim_start_matches('#').trim();
                let (key, value) = l.split_once(" = ")?;
                let value = value.split("  #").next().unwrap_or(value).trim();
                let plain = key.chars().all(|c| c.is_ascii_lowercase() || c == '-');
                plain.then(|| (key.to_owned(), value.to_owned()))
            })
            .collect()
    }

    #[test]
    fn example_file_shows_every_setting() {
        let cmd = serve_command();
        let shown: Vec<String> = example_assignments().into_iter().map(|(k, _)| k).collect();
        for arg in settings(&cmd) {
            let long = arg.get_long().unwrap_or_default();
            assert!(
                shown.iter().any(|k| k == long),
                "examples/s3cached.toml does not show {long}"
            );
        }
        for key in &shown {
            assert!(
                setting(&cmd, key).is_some(),
                "examples/s3cached.toml shows unknown key {key}"
            );
        }
        assert!(settings(&cmd).count() >= 40);
    }

    #[test]
    fn every_value_in_the_example_is_valid() {
        let cmd = serve_command();
        for (key, value) in example_assignments() {
            let table: toml::Table =
                toml::from_str(&format!("v = {value}")).unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
            let arg = setting(&cmd, &key).unwrap_or_else(|| panic!("unknown key {key}"));
            setting_args(arg, &table["v"]).unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
        }
    }

    #[test]
    fn example_file_loads_into_a_serve_config() {
        let c = serve_config(parse(&["serve", "--config", EXAMPLE]).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.memory.capacity, 1 << 30);
        assert_eq!(c.policy.ttl, Some(Duration::from_secs(300)));
        let rules: Vec<_> = c.policy.ttl_rules.iter().map(|r| (r.prefix.as_str(), r.ttl)).collect();
        assert_eq!(rules, [("thumbs/", Some(Duration::from_secs(5400))), ("logos/", None)]);
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let f = file("memory-capacity = \"64MiB\"\nttl = \"1m\"\nlisten = \"127.0.0.1:7000\"\n");
        let c = serve_config(parse(&["serve", "--config", path(&f), "--memory-capacity", "32MiB"]).unwrap());
        assert_eq!(c.memory.capacity, 32 << 20, "flag");
        assert_eq!(c.policy.ttl, Some(Duration::from_secs(60)), "file");
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000", "file");
        assert_eq!(c.policy.max_object_size, 8 << 20, "default");
        // The flag form `--key=value` counts as given too, wherever it stands.
        let c = serve_config(parse(&["serve", "--ttl=none", "--config", path(&f)]).unwrap());
        assert_eq!(c.policy.ttl, None);
    }

    #[test]
    fn repeatable_settings_take_arrays_and_flags_replace_them() {
        let f = file("domain = [\"a.example\", \"b.example\"]\nttl-rule = \"bkt/=1h30m\"\nhydrate = []\n");
        let c = serve_config(parse(&["serve", "--config", path(&f)]).unwrap());
        assert_eq!(c.domains, ["a.example", "b.example"]);
        assert_eq!(c.policy.ttl_rules[0].ttl, Some(Duration::from_secs(5400)));
        let c = serve_config(parse(&["serve", "--config", path(&f), "--domain", "c.example"]).unwrap());
        assert_eq!(c.domains, ["c.example"]);
    }

    #[test]
    fn booleans_and_numbers() {
        let f = file(
            "origin-endpoint = \"http://127.0.0.1:1\"\norigin-path-style = true\nno-hot-path = false\nwarm-concurrency = 3\n",
        );
        let c = match parse(&["serve", "--config", path(&f), "--allow-anonymous"])
            .unwrap()
            .command
        {
            Sub::Serve(args) => args.into_config().unwrap(),
            _ => unreachable!(),
        };
        assert!(matches!(
            c.origin,
            s3cached::config::OriginConfig::S3 {
                force_path_style: true,
                ..
            }
        ));
        assert!(c.hot_path);
        assert_eq!(c.events.warm_concurrency, 3);
    }

    #[test]
    fn constraints_between_flags_see_file_values() {
        // --origin-access-key requires --origin-secret-key: the file may supply the other half.
        let f = file("origin-secret-key = \"s\"\n");
        assert!(parse(&["serve", "--config", path(&f), "--origin-access-key", "k"]).is_ok());
        assert!(matches!(
            parse(&["serve", "--origin-access-key", "k"]),
            Err(CliError::Clap(_))
        ));
    }

    #[test]
    fn global_log_settings_come_from_the_file_too() {
        let f = file("log-level = \"warn\"\nlog-format = \"json\"\n");
        let cli = parse(&["serve", "--config", path(&f)]).unwrap();
        assert_eq!(cli.log_level, "warn");
        assert!(matches!(cli.log_format, LogFormat::Json));
        let cli = parse(&["--log-level", "debug", "serve", "--config", path(&f)]).unwrap();
        assert_eq!(cli.log_level, "debug");
    }

    #[test]
    fn unknown_keys_are_refused_with_name_and_line() {
        let f = file("ttl = \"1m\"\nmemroy-capacity = \"1GiB\"\n");
        let e = file_error(&["serve", "--config", path(&f)]);
        assert!(e.contains("line 2") && e.contains("\"memroy-capacity\""), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        let f = file("memory_capacity = \"1GiB\"\n");
        let e = file_error(&["serve", "--config", path(&f)]);
        assert!(e.contains("\"memory-capacity\""), "{e}");
        for key in ["config", "help", "[serve]\nttl"] {
            let f = file(&format!("{key} = \"x\"\n"));
            let e = file_error(&["serve", "--config", path(&f)]);
            assert!(e.contains("unknown key"), "{key}: {e}");
        }
    }

    #[test]
    fn wrong_types_and_bad_values_name_the_key() {
        for (text, expected) in [
            ("no-hot-path = \"yes\"", "no-hot-path: expected a boolean"),
            ("listen = [\"127.0.0.1:1\"]", "listen: expected a string, found array"),
            ("ttl = 1.5", "ttl: expected a string, found float"),
            ("domain = [1.5]", "domain: expected an array of strings"),
            ("memory-capacity = \"lots\"", "memory-capacity: invalid value 'lots'"),
            ("tier = \"disk\"", "tier: invalid value 'disk'"),
            ("ttl-rule = [\"bkt/=soon\"]", "ttl-rule: invalid value 'bkt/=soon'"),
            ("sqs-wait = 20", "sqs-wait: invalid value '20'"),
        ] {
            let f = file(&format!("\n{text}\n"));
            let e = file_error(&["serve", "--config", path(&f)]);
            assert!(e.contains(expected) && e.contains("line 2"), "{text}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let f = file("tier = \"disk\"");
        let e = file_error(&["serve", "--config", path(&f)]);
        assert!(e.contains("memory+redis"), "possible values listed: {e}");
    }

    #[test]
    fn invalid_toml_and_missing_files() {
        let f = file("ttl = \"1m\"\nttl = \"2m\"\n");
        let e = file_error(&["serve", "--config", path(&f)]);
        assert!(e.contains("not valid TOML") && e.contains("line 2"), "{e}");
        let f = file("ttl = \n");
        assert!(file_error(&["serve", "--config", path(&f)]).contains("line 1"));
        let e = file_error(&["serve", "--config", "/nonexistent/s3cached.toml"]);
        assert!(e.contains("cannot read config file /nonexistent/s3cached.toml"), "{e}");
    }

    #[test]
    fn without_a_file_parsing_is_plain_clap() {
        assert!(parse(&["serve", "--memory-capacity", "1GiB"]).is_ok());
        assert!(matches!(parse(&["serve", "--bogus"]), Err(CliError::Clap(_))));
        assert!(matches!(parse(&["--help"]), Err(CliError::Clap(_))));
        assert!(matches!(parse(&["serve", "--help"]), Err(CliError::Clap(_))));
        assert!(matches!(parse(&[]), Err(CliError::Clap(_))));
        assert!(matches!(parse(&["serve", "--config"]), Err(CliError::Clap(_))));
    }

    #[test]
    fn warm_reads_the_file_too() {
        let f = file("concurrency = 3\nredis-url = \"redis://127.0.0.1:1\"\ntier = \"redis\"\n");
        let cli = parse(&["warm", "bkt/p", "--config", path(&f)]).unwrap();
        assert!(matches!(cli.command, Sub::Warm(_)));
    }
}
