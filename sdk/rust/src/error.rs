use std::fmt;

use crate::config::ConfigError;
use crate::request::RequestError;

/// A hook's refusal: the host reports `plugin error: <message>` and, for
/// `create`, does not create the Pod. Build one with [`Error::new`], the
/// [`bail!`](crate::bail) macro, or `?` on a config/request error or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error { message: message.into() }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error { message }
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::new(message)
    }
}

impl From<ConfigError> for Error {
    /// A typed-config error in a hook reads as `validate_config` would report it.
    fn from(e: ConfigError) -> Self {
        Error { message: e.to_string() }
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        Error { message: e.to_string() }
    }
}

/// Returns `Err(Error)` from the hook with a formatted message:
/// `bail!("no GPU limit on container {}", name)`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => { return ::std::result::Result::Err($crate::Error::new(::std::format!($($arg)+))) };
}
