//! The plugin table the [`plugin!`](crate::plugin) macro builds, and the one
//! place that turns request bytes into response bytes. The wasm exports and
//! the native test harness both go through [`Plugin::call`], so a native test
//! exercises the same decoding, validation and encoding the host sees.

use crate::de::{self, ConfigError};
use crate::error::Error;
use crate::msgpack;
use crate::mutations::Mutations;
use crate::request::HookRequest;
use crate::value::Value;

/// `fn create(req: &HookRequest) -> Result<Mutations, Error>`.
pub type HookFn = fn(&HookRequest) -> Result<Mutations, Error>;
/// `fn validate(req: &HookRequest) -> Result<(), Error>`: semantic checks of the config.
pub type ValidateFn = fn(&HookRequest) -> Result<(), Error>;
/// Checks the config deserializes into the plugin's config type.
pub type ConfigCheck = fn(&Value) -> Result<(), ConfigError>;

/// What a plugin implements. `plugin!` defines one as `PLUGIN` in your crate.
#[derive(Clone, Copy)]
pub struct Plugin {
    pub on_pod_create: Option<HookFn>,
    pub on_pod_ready: Option<HookFn>,
    pub validate_config: Option<ValidateFn>,
    /// Set by `config: MyConfig`: config validation derived from the type.
    pub config_type: Option<ConfigCheck>,
}

impl Plugin {
    /// Whether the module exports `podplug_validate_config`.
    pub const fn validates_config(&self) -> bool {
        self.validate_config.is_some() || self.config_type.is_some()
    }

    /// `validate_config`: the config type's check first, then the author's.
    pub fn validate(&self, req: &HookRequest) -> Result<(), Error> {
        if let Some(check) = self.config_type {
            check(&req.plugin.config)?;
        }
        match self.validate_config {
            Some(f) => f(req),
            None => Ok(()),
        }
    }

    /// The create hook, after validating the config: a hook never sees a
    /// config that `validate_config` refuses. No hook means no mutations.
    pub fn create(&self, req: &HookRequest) -> Result<Mutations, Error> {
        self.run(self.on_pod_create, req)
    }

    /// The ready hook, after validating the config.
    pub fn ready(&self, req: &HookRequest) -> Result<Mutations, Error> {
        self.run(self.on_pod_ready, req)
    }

    fn run(&self, hook: Option<HookFn>, req: &HookRequest) -> Result<Mutations, Error> {
        let hook = match hook {
            Some(h) => h,
            None => return Ok(Mutations::new()),
        };
        self.validate(req)?;
        hook(req)
    }

    /// One call as the host makes it: `hook` is `create`, `ready` or
    /// `validate_config`; `request` and the result are MessagePack.
    pub fn call(&self, hook: &str, request: &[u8]) -> Vec<u8> {
        let decoded = HookRequest::from_msgpack(request);
        let req = decoded.as_ref().map_err(|e| Error::from(e.clone()));
        let out = match hook {
            "validate_config" => match req.and_then(|r| self.validate(r)) {
                Ok(()) => response(&[("valid", Value::Bool(true))]),
                Err(e) => response(&[("valid", Value::Bool(false)), ("message", Value::Str(e.to_string()))]),
            },
            "create" | "ready" => {
                let hook_fn = if hook == "create" { self.on_pod_create } else { self.on_pod_ready };
                match req.and_then(|r| self.run(hook_fn, r)) {
                    Ok(m) => response(&[("mutations", m.to_value())]),
                    Err(e) => response(&[("error", Value::Str(e.to_string()))]),
                }
            }
            other => response(&[("error", Value::Str(format!("unknown hook {:?}", other)))]),
        };
        // In wasm the instance is discarded after the call: freeing the
        // request piece by piece would only burn fuel.
        #[cfg(target_arch = "wasm32")]
        std::mem::forget(decoded);
        out
    }
}

/// A response map, keys in the order given (the canonical order of docs/abi.md).
fn response(fields: &[(&str, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    msgpack::write_map_len(fields.len(), &mut out);
    for (k, v) in fields {
        msgpack::write_str(k, &mut out);
        msgpack::encode(v, &mut out);
    }
    out
}

/// Glue the `plugin!` macro's exports call; not a public API.
#[doc(hidden)]
pub mod rt {
    use super::*;

    /// Config validation derived from a `serde::Deserialize` type.
    pub fn check_config<T: serde::de::DeserializeOwned>(config: &Value) -> Result<(), ConfigError> {
        de::from_value::<T>(config.clone()).map(|_| ())
    }

    /// `podplug_alloc`: `len` writable bytes, or 0. Never freed: the host
    /// discards the instance after the call.
    pub fn alloc(len: usize) -> *mut u8 {
        match std::alloc::Layout::from_size_align(len.max(1), 8) {
            Ok(layout) => unsafe { std::alloc::alloc(layout) },
            Err(_) => std::ptr::null_mut(),
        }
    }

    /// A hook export: runs the call and returns `(out_ptr << 32) | out_len`.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be readable: the host wrote the request there,
    /// into memory it got from `podplug_alloc`.
    pub unsafe fn export(plugin: &Plugin, hook: &str, ptr: *const u8, len: usize) -> u64 {
        install_panic_hook();
        let input: &[u8] = if len == 0 { &[] } else { std::slice::from_raw_parts(ptr, len) };
        let out = plugin.call(hook, input).into_boxed_slice();
        let out_len = out.len() as u64;
        let out_ptr = Box::into_raw(out) as *mut u8 as usize as u64;
        (out_ptr << 32) | out_len
    }

    /// A panic's message goes to the host as a level-4 log line before the
    /// trap (panic=abort still runs the hook), so the user reads
    /// `no GPUs left (src/lib.rs:12:9)` instead of `unreachable executed`.
    fn install_panic_hook() {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let message = match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
                (Some(s), _) => s,
                (None, Some(s)) => s.as_str(),
                (None, None) => "panic",
            };
            let line = match info.location() {
                Some(at) => format!("{} ({}:{}:{})", message, at.file(), at.line(), at.column()),
                None => message.to_string(),
            };
            crate::log::log(crate::log::Level::Panic, &line);
        }));
    }
}
