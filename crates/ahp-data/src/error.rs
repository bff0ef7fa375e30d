//! Error type of the data crate.

use std::path::PathBuf;

/// Errors raised while generating, scanning, splitting or loading data. Every variant names the
/// file, directory, domain, class or option it is about.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A shared-contract error (atomic write, image limits), naming its file.
    #[error(transparent)]
    Spec(#[from] ahp_spec::SpecError),
    /// A filesystem operation failed.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("read directory", "write file", ...).
        action: &'static str,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An output directory holds files this tool did not write (it will not mix its output
    /// with them).
    #[error("{path}: {message}")]
    OutputDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The dataset root does not exist.
    #[error("{path}: dataset root does not exist")]
    RootNotFound {
        /// The root given.
        path: PathBuf,
    },
    /// A path that must be a directory is not one.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A file or directory name is not valid UTF-8 (domain and class names must be).
    #[error("{path}: name is not valid UTF-8")]
    NonUtf8Name {
        /// The path.
        path: PathBuf,
    },
    /// The dataset root has no domain subdirectories.
    #[error("{root}: no domain subdirectories (expected <root>/<domain>/<class>/<image>)")]
    NoDomains {
        /// The dataset root.
        root: PathBuf,
    },
    /// A domain has no images at all.
    #[error("domain '{domain}' ({path}) contains no images (extensions: {extensions})")]
    EmptyDomain {
        /// The domain name.
        domain: String,
        /// The domain directory.
        path: PathBuf,
        /// The image extensions looked for.
        extensions: String,
    },
    /// A class present in other domains has no images in this one.
    #[error(
        "domain '{domain}' has no images of class '{class}' (expected them in {path}); \
         pass allow_missing_classes to accept incomplete domains"
    )]
    MissingClass {
        /// The domain name.
        domain: String,
        /// The class name.
        class: String,
        /// Where the class directory was expected.
        path: PathBuf,
    },
    /// A domain name is not known (a synthetic style or a dataset domain).
    #[error("unknown domain '{domain}' in {field}; available domains: {}", available.join(", "))]
    UnknownDomain {
        /// The name given.
        domain: String,
        /// The option that named it.
        field: &'static str,
        /// The valid names.
        available: Vec<String>,
    },
    /// An option has an invalid value.
    #[error("invalid {field}: {message}")]
    InvalidOption {
        /// The option (e.g. `classes`, `size`, `holdout_fraction`, `batch_size`).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Every domain is a target domain, so there is nothing to train on.
    #[error(
        "no source domain left: target domains [{}] cover every domain of the dataset",
        targets.join(", ")
    )]
    NoSourceDomains {
        /// The target domains given.
        targets: Vec<String>,
    },
    /// A source domain has no samples in its in-split (too few images for the holdout
    /// fraction).
    #[error("source domain '{domain}' has no training samples after holding out {holdout_fraction} of its {total} images")]
    EmptySourceSplit {
        /// The domain name.
        domain: String,
        /// The holdout fraction used.
        holdout_fraction: f64,
        /// Number of images in the domain.
        total: usize,
    },
    /// An image could not be read, decoded or preprocessed.
    #[error("{path}: {message}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Every image of a batch was unreadable.
    #[error("batch {step}: all {count} images are unreadable (first: {first_error})")]
    UnreadableBatch {
        /// The step (training) or chunk index (evaluation).
        step: u64,
        /// Number of images in the batch.
        count: usize,
        /// The first image's error, which names its file.
        first_error: String,
    },
    /// An npm package could not be fetched, verified or read.
    #[error("{package}: {message}")]
    Package {
        /// `name@version`.
        package: String,
        /// What went wrong (naming the file where there is one).
        message: String,
    },
    /// The prefetch thread could not be started.
    #[error("cannot start the prefetch thread: {source}")]
    SpawnThread {
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The prefetch thread stopped without reporting an error (it panicked).
    #[error("prefetch thread for steps from {start_step} stopped unexpectedly")]
    PrefetchStopped {
        /// The step the prefetcher started at.
        start_step: u64,
    },
}

impl DataError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            path: path.into(),
            action,
            source,
        }
    }

    pub(crate) fn package(package: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Package {
            package: package.into(),
            message: message.into(),
        }
    }

    pub(crate) fn option(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidOption {
            field,
            message: message.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, DataError>;
