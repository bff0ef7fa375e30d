//! [`ClassifierBuilder`]: the options of a [`Classifier`] and the creation of its ONNX Runtime
//! sessions, trying the execution providers in order.

use std::path::{Path, PathBuf};

use ort::session::Session;

use super::{Classifier, ExecutionProvider};
use crate::error::{Error, Result};
use crate::ortlib;

/// Options for loading a [`Classifier`]; created by [`Classifier::builder`].
#[derive(Debug, Clone)]
pub struct ClassifierBuilder {
    providers: Option<Vec<ExecutionProvider>>,
    strict: bool,
    intra_threads: Option<usize>,
    spinning: Option<bool>,
    sessions: usize,
    ort_library: Option<PathBuf>,
}

impl Default for ClassifierBuilder {
    fn default() -> Self {
        Self {
            providers: None,
            strict: false,
            intra_threads: None,
            spinning: None,
            sessions: 1,
            ort_library: None,
        }
    }
}

/// Where the model comes from.
enum ModelSource<'a> {
    File(&'a Path),
    Memory(&'a [u8]),
}

impl ClassifierBuilder {
    /// The execution providers to try, in order (default:
    /// [`ExecutionProvider::default_order`]). The first one that creates a session is used.
    #[must_use]
    pub fn execution_providers(mut self, providers: impl Into<Vec<ExecutionProvider>>) -> Self {
        self.providers = Some(providers.into());
        self
    }

    /// Prefer `device` and fall back to the providers after it (see
    /// [`ExecutionProvider::with_fallbacks`]); with [`strict`](Self::strict), use only it.
    #[must_use]
    pub fn device(self, device: ExecutionProvider) -> Self {
        self.execution_providers(device.with_fallbacks())
    }

    /// Fail when the first provider cannot be used instead of falling back to the next one.
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Threads of ONNX Runtime's intra-op pool, per session (default: ONNX Runtime's choice, the
    /// number of physical cores).
    #[must_use]
    pub fn intra_threads(mut self, threads: usize) -> Self {
        self.intra_threads = Some(threads.max(1));
        self
    }

    /// Whether the intra-op threads spin while waiting for work (ONNX Runtime's default: yes).
    /// Spinning lowers a lone run's latency; off, the threads sleep between runs and leave the
    /// cores to the rest of the process (a server's HTTP and decoding threads).
    #[must_use]
    pub fn spinning(mut self, spin: bool) -> Self {
        self.spinning = Some(spin);
        self
    }

    /// Number of ONNX Runtime sessions in the pool (default 1). `Session::run` needs exclusive
    /// access, so concurrent calls wait for a free session: more sessions allow concurrent runs
    /// (useful on GPUs, or on CPUs with [`intra_threads`](Self::intra_threads) set to
    /// `cores / sessions`) at the cost of one copy of the weights each.
    #[must_use]
    pub fn sessions(mut self, sessions: usize) -> Self {
        self.sessions = sessions.max(1);
        self
    }

    /// Load ONNX Runtime from this file instead of `ORT_DYLIB_PATH` or the default location
    /// (see [`crate::ortlib`]). Only the first library a process loads counts.
    #[must_use]
    pub fn ort_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.ort_library = Some(path.into());
        self
    }

    /// Loads the model from an ONNX file.
    pub fn commit_from_file(self, path: impl AsRef<Path>) -> Result<Classifier> {
        let path = path.as_ref();
        // A FIFO or a device node would block or never end: refuse before opening it.
        ahp_spec::files::check_regular(path).map_err(|e| match e {
            ahp_spec::SpecError::Io { path, source } => Error::Io { path, source },
            other => other.into(),
        })?;
        self.commit(ModelSource::File(path), path.display().to_string())
    }

    /// Loads the model from the bytes of an ONNX file.
    pub fn commit_from_memory(self, bytes: &[u8]) -> Result<Classifier> {
        self.commit(ModelSource::Memory(bytes), "<memory>".to_string())
    }

    /// Creates the session pool: the first provider that works, then the other sessions on it.
    fn commit(self, source: ModelSource<'_>, model: String) -> Result<Classifier> {
        let rt = ortlib::runtime(self.ort_library.as_deref())?;
        let providers = self.provider_order()?;
        let (provider, first) = self.first_session(&rt, &providers, &source, &model)?;
        log::info!("{model}: running on the {provider} execution provider");
        let sessions = self.session_pool(&rt, provider, &source, &model, first)?;
        Classifier::new(model, sessions, provider, rt.library)
    }

    /// The providers to try, in order (never empty).
    fn provider_order(&self) -> Result<Vec<ExecutionProvider>> {
        let providers = self
            .providers
            .clone()
            .unwrap_or_else(ExecutionProvider::default_order);
        if providers.is_empty() {
            return Err(Error::InvalidInput(
                "empty list of execution providers".to_string(),
            ));
        }
        Ok(providers)
    }

    /// The first of `providers` that creates a session, with that session. A provider that fails
    /// is logged and the next one tried, unless [`strict`](Self::strict) (then it is the error).
    fn first_session(
        &self,
        rt: &ortlib::Runtime,
        providers: &[ExecutionProvider],
        source: &ModelSource<'_>,
        model: &str,
    ) -> Result<(ExecutionProvider, Session)> {
        let mut attempts = Vec::new();
        for (i, &ep) in providers.iter().enumerate() {
            let why = match self.create_session(rt, ep, source) {
                Ok(session) => return Ok((ep, session)),
                Err(why) => why,
            };
            let last = self.strict || i + 1 == providers.len();
            if last && ep == ExecutionProvider::Cpu && attempts.is_empty() {
                // The CPU provider does not fail by itself: the model is the problem.
                return Err(Error::Ort {
                    model: model.to_string(),
                    context: "cannot create an ONNX Runtime session".to_string(),
                    message: why,
                });
            }
            if !last {
                log::warn!("{model}: execution provider {ep} not used ({why}); falling back");
            }
            attempts.push((ep, why));
            if self.strict {
                break;
            }
        }
        Err(Error::ExecutionProvider {
            model: model.to_string(),
            attempts,
        })
    }

    /// `first` and the other [`sessions`](Self::sessions) of the pool, on the same provider.
    fn session_pool(
        &self,
        rt: &ortlib::Runtime,
        provider: ExecutionProvider,
        source: &ModelSource<'_>,
        model: &str,
        first: Session,
    ) -> Result<Vec<Session>> {
        let mut sessions = vec![first];
        for _ in 1..self.sessions {
            let session = self
                .create_session(rt, provider, source)
                .map_err(|message| Error::Ort {
                    model: model.to_string(),
                    context: "cannot create an additional session".to_string(),
                    message,
                })?;
            sessions.push(session);
        }
        Ok(sessions)
    }

    /// One attempt: a session on exactly `ep` (registration failures are errors).
    fn create_session(
        &self,
        rt: &ortlib::Runtime,
        ep: ExecutionProvider,
        source: &ModelSource<'_>,
    ) -> std::result::Result<Session, String> {
        let dispatch = ep.dispatch()?;
        let mut builder = Session::builder(&rt.environment).map_err(|e| e.to_string())?;
        if let Some(n) = self.intra_threads {
            builder = builder.with_intra_threads(n).map_err(|e| e.to_string())?;
        }
        if let Some(spin) = self.spinning {
            builder = builder
                .with_intra_op_spinning(spin)
                .map_err(|e| e.to_string())?;
        }
        ep.check_available(&rt.library)?;
        let mut builder = builder
            .with_execution_providers([dispatch])
            .map_err(|e| format!("cannot register {ep}: {e}"))?;
        match source {
            ModelSource::File(path) => builder.commit_from_file(path),
            ModelSource::Memory(bytes) => builder.commit_from_memory(bytes),
        }
        .map_err(|e| e.to_string())
    }
}
