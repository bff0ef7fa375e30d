//! The command lines of this crate as library code, so that the standalone binaries
//! (`ahp-train`, `ahp-pretrain`) and the `ahp` front door (`ahp train`, `ahp pretrain`) run the
//! same code: each command is an argument struct (`clap::Args`) and a `main` returning the exit
//! code.

pub mod pretrain;
pub mod train;

/// CPU threads of the tensor kernels: candle sizes its thread pool from `RAYON_NUM_THREADS`,
/// so this must run before any kernel does.
pub(crate) fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        if n == 0 {
            anyhow::bail!("--threads must be at least 1");
        }
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    Ok(())
}
