//! How every ahp command ends: the standalone binaries and the `ahp` front door report a failed
//! run the same way (`error: <message with its causes>` on stderr, a command-specific exit code).

use std::fmt::Display;
use std::process::ExitCode;

/// The exit code of a command's result: the code it returned, or `error_code` after printing
/// the error (with `{:#}`, so an `anyhow` error shows its chain of causes).
pub fn finish<E: Display>(result: Result<ExitCode, E>, error_code: u8) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(error_code)
        }
    }
}
