//! The plugin table the [`plugin!`](crate::plugin) macro builds, and the one
//! place that turns request bytes into response bytes. The wasm exports and
//! the native test harness both go through [`Plugin::call`], so a native test
//! exercises the same decoding, validation and encoding the host sees.

use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::mutations::Mutations;
use crate::request::HookRequest;
use crate::value::Value;

/// A hook as the plugin table holds it: the `plugin!` macro wraps the
/// author's function (which, with `config: T`, also receives the config
/// decoded once as `&T`).
pub type HookFn = fn(&HookRequest) -> Result<Mutations, Error>;
/// `validate_config` as the plugin table holds it.
pub type ValidateFn = fn(&HookRequest) -> Result<(), Error>;

/// What a plugin implements. `plugin!` defines one as `PLUGIN` in your crate.
#[derive(Clone, Copy)]
pub struct Plugin {
    pub on_pod_create: Option<HookFn>,
    pub on_pod_ready: Option<HookFn>,
    /// The config's type check and the author's `validate_config`, in that order.
    pub validate_config: Option<ValidateFn>,
}

impl Plugin {
    /// Whether the module exports `podplug_validate_config`.
    pub const fn validates_config(&self) -> bool {
        self.validate_config.is_some()
    }

    /// `validate_config`: the config type's check first, then the author's.
    pub fn validate(&self, req: &HookRequest) -> Result<(), Error> {
        match self.validate_config {
            Some(f) => f(req),
            None => Ok(()),
        }
    }

    /// The create hook, after validating the config: a hook never sees a
    /// config that `validate_config` refuses. No hook means no mutations.
    pub fn create(&self, req: &HookRequest) -> Result<Mutations, Error> {
        Self::run(self.on_pod_create, req)
    }

    /// The ready hook, after validating the config.
    pub fn ready(&self, req: &HookRequest) -> Result<Mutations, Error> {
        Self::run(self.on_pod_ready, req)
    }

    fn run(hook: Option<HookFn>, req: &HookRequest) -> Result<Mutations, Error> {
        let out = match hook {
            Some(h) => h(req),
            None => Ok(Mutations::new()),
        };
        // A part of the request that did not decode read as empty: whatever
        // the hook made of it, the answer is the decoding error.
        match req.problem() {
            Some(p) => Err(p.into()),
            None => out,
        }
    }

    /// One call as the host makes it: `hook` is `create`, `ready` or
    /// `validate_config`; `request` and the result are MessagePack.
    /// Natively the request bytes are copied and kept for the rest of the
    /// process (the views borrow from them, as they do in wasm).
    pub fn call(&self, hook: &str, request: &[u8]) -> Vec<u8> {
        #[cfg(not(target_arch = "wasm32"))]
        let request: &'static [u8] = Box::leak(request.to_vec().into_boxed_slice());
        // SAFETY (wasm): the host wrote the request into memory it got from
        // `podplug_alloc`; nothing frees or reuses it before the instance is
        // discarded, so it is alive and unchanged for the whole call.
        #[cfg(target_arch = "wasm32")]
        let request: &'static [u8] = unsafe { std::slice::from_raw_parts(request.as_ptr(), request.len()) };
        self.call_static(hook, request)
    }

    fn call_static(&self, hook: &str, request: &'static [u8]) -> Vec<u8> {
        let decoded = HookRequest::from_msgpack(request);
        let req = decoded.as_ref().map_err(|e| Error::from(e.clone()));
        let mut out = Vec::with_capacity(256);
        match hook {
            "validate_config" => match req.and_then(|r| self.validate(r)) {
                Ok(()) => response(&mut out, "valid", &Value::Bool(true), None),
                Err(e) => response(&mut out, "valid", &Value::Bool(false), Some(e.message())),
            },
            "create" | "ready" => {
                let hook_fn = if hook == "create" { self.on_pod_create } else { self.on_pod_ready };
                match req.and_then(|r| Self::run(hook_fn, r)) {
                    Ok(m) => {
                        rmp::encode::write_map_len(&mut out, 1).expect("to memory");
                        rmp::encode::write_str(&mut out, "mutations").expect("to memory");
                        m.encode_into(&mut out);
                    }
                    Err(e) => error_response(&mut out, e.message()),
                }
            }
            other => error_response(&mut out, &format!("unknown hook {:?}", other)),
        }
        // In wasm the instance is discarded after the call: freeing the
        // decoded parts piece by piece would only burn fuel.
        #[cfg(target_arch = "wasm32")]
        std::mem::forget(decoded);
        out
    }
}

fn error_response(out: &mut Vec<u8>, message: &str) {
    rmp::encode::write_map_len(out, 1).expect("to memory");
    rmp::encode::write_str(out, "error").expect("to memory");
    rmp::encode::write_str(out, message).expect("to memory");
}

/// `{key: value}` or `{key: value, message: ...}` (validate_config), in the
/// canonical order of docs/abi.md.
fn response(out: &mut Vec<u8>, key: &str, value: &Value, message: Option<&str>) {
    rmp::encode::write_map_len(out, if message.is_some() { 2 } else { 1 }).expect("to memory");
    rmp::encode::write_str(out, key).expect("to memory");
    value.encode_into(out);
    if let Some(m) = message {
        rmp::encode::write_str(out, "message").expect("to memory");
        rmp::encode::write_str(out, m).expect("to memory");
    }
}

/// Glue the `plugin!` macro's exports call; not a public API.
#[doc(hidden)]
pub mod rt {
    use super::*;

    /// A hook with a typed config: the config is decoded once and checked
    /// (the type, then the author's validator) before the hook sees it.
    pub fn typed_hook<C: DeserializeOwned>(
        req: &HookRequest,
        validate: Option<fn(&HookRequest, &C) -> Result<(), Error>>,
        hook: fn(&HookRequest, &C) -> Result<Mutations, Error>,
    ) -> Result<Mutations, Error> {
        let config: C = req.config()?;
        if let Some(v) = validate {
            v(req, &config)?;
        }
        hook(req, &config)
    }

    /// `validate_config` with a typed config.
    pub fn typed_validate<C: DeserializeOwned>(
        req: &HookRequest,
        validate: Option<fn(&HookRequest, &C) -> Result<(), Error>>,
    ) -> Result<(), Error> {
        let config: C = req.config()?;
        match validate {
            Some(v) => v(req, &config),
            None => Ok(()),
        }
    }

    /// A hook without a config type, after the author's validator if any.
    pub fn plain_hook(
        req: &HookRequest,
        validate: Option<ValidateFn>,
        hook: HookFn,
    ) -> Result<Mutations, Error> {
        if let Some(v) = validate {
            v(req)?;
        }
        hook(req)
    }

    /// A compile-time check that `config: T` names a config type.
    pub fn assert_config<C: DeserializeOwned>() {}

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
