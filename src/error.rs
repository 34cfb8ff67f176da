//! The library's one public error type. Each variant names the thing that is wrong
//! (a path, an object id, an option) so the CLI can print it on one line.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("repository {location}: {source}")]
    Backend {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no repository at {0}")]
    NoRepository(String),
    #[error("{0} is not empty: refusing to create a repository there")]
    NotEmpty(String),
    #[error("wrong password: no key in the repository opens with it")]
    WrongPassword,
    #[error("repository is locked: {0}")]
    Locked(String),
    #[error("{kind} {id}: {detail}")]
    Corrupt {
        kind: &'static str,
        id: String,
        detail: String,
    },
    #[error("malformed {what}: {detail}")]
    Format { what: &'static str, detail: String },
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: u64 },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn format(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Format {
            what,
            detail: detail.into(),
        }
    }

    pub fn corrupt(kind: &'static str, id: impl ToString, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            kind,
            id: id.to_string(),
            detail: detail.into(),
        }
    }
}

/// Adds the path to a bare `std::io::Error`.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
