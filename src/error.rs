//! The library's error type.
//!
//! Every fallible function in srkit returns [`Result<T>`]. Errors carry the
//! context a user needs to act on them (the path, the parameter, the shapes),
//! and are inspectable: match on [`Error`]'s variants rather than on text.

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in srkit's library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read, written or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// A file exists but is not an image srkit can decode (truncated, corrupt,
    /// empty or not an image at all).
    #[error("{}: cannot decode image: {reason}", path.display())]
    Decode {
        /// The file that failed to decode.
        path: PathBuf,
        /// What the decoder reported.
        reason: String,
    },

    /// An image could not be encoded to the requested format.
    #[error("{}: cannot encode image: {reason}", path.display())]
    Encode {
        /// The destination.
        path: PathBuf,
        /// What the encoder reported.
        reason: String,
    },

    /// A caller-supplied parameter is out of its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// The parameter's name as the user knows it (`scale`, `size`, ...).
        name: &'static str,
        /// Why the value is rejected.
        reason: String,
    },

    /// An image (input or requested output) exceeds the pixel limit.
    #[error(
        "{what} would be {width}x{height} = {pixels} pixels, above the limit of {limit} \
         (raise it with --max-pixels)"
    )]
    TooLarge {
        /// Which image (e.g. "output", "input").
        what: &'static str,
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// width * height.
        pixels: u64,
        /// The limit in force.
        limit: u64,
    },

    /// Two images that must agree in shape do not.
    #[error("size mismatch: {left} vs {right} (width x height x channels)")]
    ShapeMismatch {
        /// Shape of the first operand, as text (e.g. `512x512x3`).
        left: String,
        /// Shape of the second operand.
        right: String,
    },

    /// A file is in a format or layout srkit does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A model file or model configuration is invalid.
    #[error("model: {0}")]
    Model(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
