//! `podplug.log`: lines the host attaches to the plugin's name and hook.
//! Off wasm (native `cargo test`) there is no host: lines go to stderr and
//! are kept per thread for [`testing::take_logs`](crate::testing::take_logs).
//!
//! ```
//! podplug_sdk::log::warn!("no GPU limit on {}, using {}", "main", 1);
//! podplug_sdk::info!("also at the crate root");
//! podplug_sdk::log::debug("or a plain function");
//! # use podplug_sdk::log::Level;
//! # assert_eq!(podplug_sdk::testing::take_logs(), [
//! #     (Level::Warn, "no GPU limit on main, using 1".to_string()),
//! #     (Level::Info, "also at the crate root".to_string()),
//! #     (Level::Debug, "or a plain function".to_string()),
//! # ]);
//! ```

/// Log levels of docs/abi.md. `Panic` is the guest's last words before a trap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
    Panic = 4,
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "podplug")]
extern "C" {
    #[link_name = "log"]
    fn podplug_log(level: i32, ptr: *const u8, len: usize);
}

/// Sends one line to the host.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    unsafe {
        podplug_log(level as i32, message.as_ptr(), message.len())
    }
    #[cfg(not(target_arch = "wasm32"))]
    native::record(level, message)
}

pub fn debug(message: &str) {
    log(Level::Debug, message)
}

pub fn info(message: &str) {
    log(Level::Info, message)
}

pub fn warn(message: &str) {
    log(Level::Warn, message)
}

pub fn error(message: &str) {
    log(Level::Error, message)
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native {
    use super::Level;
    use std::cell::RefCell;

    thread_local! {
        pub(crate) static LINES: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn record(level: Level, message: &str) {
        eprintln!("podplug.log {:?}: {}", level, message);
        LINES.with(|l| l.borrow_mut().push((level, message.to_string())));
    }
}

/// `podplug_sdk::debug!("x = {}", x)`: formats and logs at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::debug(&::std::format!($($arg)+)) };
}

/// `podplug_sdk::info!(...)`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::info(&::std::format!($($arg)+)) };
}

/// `podplug_sdk::warn!(...)`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::warn(&::std::format!($($arg)+)) };
}

/// `podplug_sdk::error!(...)`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::error(&::std::format!($($arg)+)) };
}

// Also reachable as podplug_sdk::log::info! etc.
#[doc(inline)]
pub use crate::{debug, error, info, warn};
