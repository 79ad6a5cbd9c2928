//! Bad input on the `s3cached serve` command line is reported plainly: one message, a non-zero
//! exit, no panic.

mod support;

use std::process::Command;
use std::time::Duration;

use support::REGION;
use support::cli_tools::{CLIENT_KEY, CLIENT_SECRET, Output, TempDir, clear_aws_env, run};

// ---------------------------------------------------------------------------------------------
// 6. Bad input on the command line
// ---------------------------------------------------------------------------------------------

/// `s3cached serve <args>` with a clean environment, an unused origin and the admin port off;
/// must exit by itself.
fn serve_with(args: &[&str]) -> Output {
    let cwd = TempDir::new("badinput");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3cached"));
    clear_aws_env(&mut cmd);
    cmd.arg("serve")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--origin-endpoint",
            "http://127.0.0.1:9",
            "--origin-region",
            REGION,
            "--access-key",
            CLIENT_KEY,
            "--secret-key",
            CLIENT_SECRET,
        ])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .current_dir(cwd.path());
    run(cmd, Duration::from_secs(20))
}

fn assert_no_panic(output: &Output) {
    for word in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(
            !output.stderr.contains(word) && !output.stdout.contains(word),
            "output mentions {word:?}: {}",
            output.describe()
        );
    }
}

#[test]
fn bad_command_line_input_is_reported_plainly() {
    // --ttl: one line, naming the flag.
    let ttl = serve_with(&["--ttl", "soon"]);
    assert!(
        !ttl.success() && ttl.code.is_some(),
        "serve --ttl soon should exit with an error: {}",
        ttl.describe()
    );
    assert_no_panic(&ttl);
    let lines: Vec<&str> = ttl.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "serve --ttl soon should print one line: {}",
        ttl.describe()
    );
    assert!(
        lines[0].contains("--ttl") && lines[0].contains("soon"),
        "the error should name --ttl and the value: {}",
        ttl.describe()
    );

    let zero = serve_with(&["--ttl", "0s"]);
    assert!(!zero.success(), "serve --ttl 0s: {}", zero.describe());
    assert_no_panic(&zero);
    assert!(zero.stderr.contains("--ttl"), "{}", zero.describe());

    // --memory-capacity: a message naming the flag and the value.
    let capacity = serve_with(&["--memory-capacity", "lots"]);
    assert!(
        !capacity.success() && capacity.code.is_some(),
        "serve --memory-capacity lots should exit with an error: {}",
        capacity.describe()
    );
    assert_no_panic(&capacity);
    assert!(
        capacity.stderr.contains("--memory-capacity") && capacity.stderr.contains("lots"),
        "the error should name --memory-capacity and the value: {}",
        capacity.describe()
    );

    // --yield-after: a message naming the flag and the value.
    let yield_after = serve_with(&["--yield-after", "often"]);
    assert!(!yield_after.success(), "{}", yield_after.describe());
    assert_no_panic(&yield_after);
    assert!(
        yield_after.stderr.contains("--yield-after") && yield_after.stderr.contains("often"),
        "the error should name --yield-after and the value: {}",
        yield_after.describe()
    );

    // Contradicting sizes.
    let sizes = serve_with(&["--memory-capacity", "1MiB", "--max-object-size", "8MiB"]);
    assert!(!sizes.success(), "{}", sizes.describe());
    assert_no_panic(&sizes);
    assert!(sizes.stderr.contains("--max-object-size"), "{}", sizes.describe());

    // --help documents the main flags and their environment variables.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3cached"));
    clear_aws_env(&mut cmd);
    cmd.args(["serve", "--help"]);
    let help = run(cmd, Duration::from_secs(20)).expect_success();
    for needle in ["--origin-endpoint", "--max-object-size", "--ttl", "S3CACHED_"] {
        assert!(
            help.stdout.contains(needle),
            "`s3cached serve --help` does not mention {needle}: {}",
            help.describe()
        );
    }
}
