//! Write podplug plugins in Rust.
//!
//! A podplug plugin is a WebAssembly module the podplug operator runs before
//! each Pod of a Kthena `ModelServing` is created (and when it becomes ready).
//! It reads a [`HookRequest`] and returns [`Mutations`]; this crate implements
//! the ABI of docs/abi.md so a plugin is one small file:
//!
//! ```
//! use podplug_sdk::{HookRequest, Mutations, Error, Toleration};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! #[serde(rename_all = "camelCase", deny_unknown_fields)]
//! struct Config {
//!     gpus: u32,
//!     #[serde(default)]
//!     runtime_class: Option<String>,
//! }
//!
//! fn create(_req: &HookRequest, cfg: &Config) -> Result<Mutations, Error> {
//!     let mut m = Mutations::new();
//!     m.set_resource_limit("nvidia.com/gpu", cfg.gpus)
//!         .add_toleration(Toleration::exists("nvidia.com/gpu").effect("NoSchedule"));
//!     if let Some(rc) = &cfg.runtime_class {
//!         m.set_runtime_class_name(rc);
//!     }
//!     Ok(m)
//! }
//!
//! podplug_sdk::plugin! {
//!     config: Config,
//!     on_pod_create: create,
//!     mutations: [setResource, addToleration, setRuntimeClassName],
//! }
//! # fn main() {
//! # let req = podplug_sdk::testing::Request::create().config_json(r#"{"gpus": "8"}"#).build();
//! # assert_eq!(PLUGIN.create(&req).unwrap_err().message(), "field gpus: invalid type: string \"8\", expected u32");
//! # }
//! ```
//!
//! Build with `cargo build --release --target wasm32-unknown-unknown`; see
//! the crate's README for Debian's offline toolchain and for testing natively
//! with [`testing`].

#[cfg(target_arch = "wasm32")]
pub mod alloc;
mod config;
mod de;
pub mod defaults;
mod error;
pub mod k8s;
pub mod log;
pub mod metadata;
mod mutations;
mod plugin;
mod request;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod value;
mod wire;

pub use config::{from_value, ConfigError};
pub use error::Error;
pub use wire::DecodeError;
pub use mutations::{EnvSource, Mutation, Mutations, NodeRequirement, ResourceKind, OPS};
pub use plugin::{HookFn, Plugin, ValidateFn};
pub use request::{
    Container, ContainerPort, EnvVar, HookRequest, ModelServing, ObjectMeta, Pod, PodCondition, PodSpec, PodStatus,
    Quantity, RequestError, ResourceRequirements, Str, StringMap, Toleration, Volume, VolumeMount,
};
pub use value::{to_value, Map, SerializeError, Value};

// The README's examples are compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(all(target_arch = "wasm32", feature = "bump-alloc"))]
#[global_allocator]
static ALLOCATOR: alloc::BumpAlloc = alloc::BumpAlloc::new();

/// The ABI version this SDK speaks (`podplug_abi_version`).
pub const ABI_VERSION: i32 = 2;

#[doc(hidden)]
pub use mutations::__ops;
#[doc(hidden)]
pub use plugin::rt as __rt;

/// Exports the ABI: `podplug_abi_version`, `podplug_alloc`, one export per hook
/// given, `podplug_validate_config` when a config type or validator is given,
/// and the `podplug.metadata` section. Also defines `pub static PLUGIN:
/// `[`Plugin`] in your crate, for native tests. Every key is optional and
/// may come in any order:
///
/// ```ignore
/// podplug_sdk::plugin! {
///     on_pod_create: create,        // fn(&HookRequest, &MyConfig) -> Result<Mutations, Error>
///     on_pod_ready: ready,          // same signature; label/annotation ops only
///     config: MyConfig,             // serde::Deserialize: validate_config for free
///     validate_config: validate,    // fn(&HookRequest, &MyConfig) -> Result<(), Error>, after the type check
///     mutations: [setLabel, addVolume], // ops listed in podplug.metadata
/// }
/// ```
///
/// With `config: MyConfig` each call decodes the config once and passes it
/// to the validator and the hook; without it, hooks and the validator take
/// the request alone (`fn(&HookRequest) -> ...`) and read the config with
/// `req.config_value()` or `req.config::<T>()`.
///
/// Hooks see only configs that pass validation. A wrong signature, an unknown
/// or repeated key, or an unknown op in `mutations` is a compile error:
///
/// ```compile_fail
/// # use podplug_sdk::*;
/// fn create(_: &HookRequest) -> Mutations { Mutations::new() } // not a Result
/// podplug_sdk::plugin! { on_pod_create: create }
/// ```
/// ```compile_fail
/// # use podplug_sdk::*;
/// # fn create(_: &HookRequest) -> Result<Mutations, Error> { Ok(Mutations::new()) }
/// podplug_sdk::plugin! { on_pod_creat: create } // unknown key
/// ```
/// ```compile_fail
/// # use podplug_sdk::*;
/// # fn create(_: &HookRequest) -> Result<Mutations, Error> { Ok(Mutations::new()) }
/// podplug_sdk::plugin! { on_pod_create: create, on_pod_create: create } // repeated
/// ```
/// ```compile_fail
/// # use podplug_sdk::*;
/// # fn create(_: &HookRequest) -> Result<Mutations, Error> { Ok(Mutations::new()) }
/// podplug_sdk::plugin! { on_pod_create: create, mutations: [setLable] } // not an op
/// ```
/// ```compile_fail
/// # use podplug_sdk::*;
/// # fn create(_: &HookRequest) -> Result<Mutations, Error> { Ok(Mutations::new()) }
/// struct NotDeserialize;
/// podplug_sdk::plugin! { config: NotDeserialize, on_pod_create: create }
/// ```
/// ```compile_fail
/// # use podplug_sdk::*;
/// # fn create(_: &HookRequest) -> Result<Mutations, Error> { Ok(Mutations::new()) }
/// #[derive(serde::Deserialize)]
/// struct Config {}
/// podplug_sdk::plugin! { config: Config, on_pod_create: create } // a typed config is passed: fn(&HookRequest, &Config)
/// ```
/// and the same with everything right compiles:
/// ```
/// # use podplug_sdk::*;
/// #[derive(serde::Deserialize)]
/// struct Config {}
/// fn create(_: &HookRequest, _: &Config) -> Result<Mutations, Error> { Ok(Mutations::new()) }
/// podplug_sdk::plugin! { mutations: [setLabel], config: Config, on_pod_create: create, on_pod_ready: create }
/// # fn main() { assert!(PLUGIN.on_pod_ready.is_some() && PLUGIN.validates_config()); }
/// ```
#[macro_export]
macro_rules! plugin {
    ($($body:tt)*) => {
        $crate::__plugin_parse! { [] [] [] [] [] ; $($body)* }
    };
}

// Slots: [create] [ready] [validate_config] [config type] [mutations]. Each key
// fills its slot once; the last arm emits.
#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_parse {
    ([$($c:tt)*] [$($r:tt)*] [$($v:tt)*] [$($t:tt)*] [$($m:tt)*] ; $(,)?) => {
        $crate::__plugin_emit! { [$($c)*] [$($r)*] [$($v)*] [$($t)*] [$($m)*] }
    };
    ([] [$($r:tt)*] [$($v:tt)*] [$($t:tt)*] [$($m:tt)*] ; on_pod_create : $f:path $(, $($rest:tt)*)?) => {
        $crate::__plugin_parse! { [$f] [$($r)*] [$($v)*] [$($t)*] [$($m)*] ; $($($rest)*)? }
    };
    ([$($c:tt)*] [] [$($v:tt)*] [$($t:tt)*] [$($m:tt)*] ; on_pod_ready : $f:path $(, $($rest:tt)*)?) => {
        $crate::__plugin_parse! { [$($c)*] [$f] [$($v)*] [$($t)*] [$($m)*] ; $($($rest)*)? }
    };
    ([$($c:tt)*] [$($r:tt)*] [] [$($t:tt)*] [$($m:tt)*] ; validate_config : $f:path $(, $($rest:tt)*)?) => {
        $crate::__plugin_parse! { [$($c)*] [$($r)*] [$f] [$($t)*] [$($m)*] ; $($($rest)*)? }
    };
    ([$($c:tt)*] [$($r:tt)*] [$($v:tt)*] [] [$($m:tt)*] ; config : $ty:ty $(, $($rest:tt)*)?) => {
        $crate::__plugin_parse! { [$($c)*] [$($r)*] [$($v)*] [$ty] [$($m)*] ; $($($rest)*)? }
    };
    ([$($c:tt)*] [$($r:tt)*] [$($v:tt)*] [$($t:tt)*] [] ; mutations : [$($op:ident),* $(,)?] $(, $($rest:tt)*)?) => {
        $crate::__plugin_parse! { [$($c)*] [$($r)*] [$($v)*] [$($t)*] [$($op),*] ; $($($rest)*)? }
    };
    ([$($c:tt)*] [$($r:tt)*] [$($v:tt)*] [$($t:tt)*] [$($m:tt)*] ; mutations : $($rest:tt)*) => {
        ::core::compile_error!("podplug_sdk::plugin!: `mutations` is given twice or is not a list like `[setLabel, addVolume]`");
    };
    ([$($c:tt)*] [$($r:tt)*] [$($v:tt)*] [$($t:tt)*] [$($m:tt)*] ; on_pod_create : $($rest:tt)*) => {
        ::core::compile_error!("podplug_sdk::plugin!: `on_pod_create` is given twice or is not a function path");
    };
    ([$($c:tt)*] [$($r:tt)*] [$($v:tt)*] [$($t:tt)*] [$($m:tt)*] ; on_pod_ready : $($rest:tt)*) => {
        ::core::compile_error!("podplug_sdk::plugin!: `on_pod_ready` is given twice or is not a function path");
    };
    ([$($c:tt)*] [$($r:tt)*] [$($v:tt)*] [$($t:tt)*] [$($m:tt)*] ; validate_config : $($rest:tt)*) => {
        ::core::compile_error!("podplug_sdk::plugin!: `validate_config` is given twice or is not a function path");
    };
    ([$($c:tt)*] [$($r:tt)*] [$($v:tt)*] [$($t:tt)*] [$($m:tt)*] ; config : $($rest:tt)*) => {
        ::core::compile_error!("podplug_sdk::plugin!: `config` is given twice or is not a type");
    };
    ([$($c:tt)*] [$($r:tt)*] [$($v:tt)*] [$($t:tt)*] [$($m:tt)*] ; $key:ident $($rest:tt)*) => {
        ::core::compile_error!(::core::concat!(
            "podplug_sdk::plugin!: unknown key `", ::core::stringify!($key),
            "`; expected on_pod_create, on_pod_ready, validate_config, config or mutations"
        ));
    };
    ([$($c:tt)*] [$($r:tt)*] [$($v:tt)*] [$($t:tt)*] [$($m:tt)*] ; $($rest:tt)*) => {
        ::core::compile_error!("podplug_sdk::plugin!: expected `key: value` pairs separated by commas");
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_emit {
    // With `config: T`: hooks are `fn(&HookRequest, &T)`; the config is decoded
    // once per call and validated before the hook sees it.
    ([$($c:path)?] [$($r:path)?] [$($v:path)?] [$t:ty] [$($m:ident),*]) => {
        // Signature checks first, so a mismatch points at the author's function.
        $(const _: fn(&$crate::HookRequest, &$t) -> ::core::result::Result<$crate::Mutations, $crate::Error> = $c;)?
        $(const _: fn(&$crate::HookRequest, &$t) -> ::core::result::Result<$crate::Mutations, $crate::Error> = $r;)?
        $(const _: fn(&$crate::HookRequest, &$t) -> ::core::result::Result<(), $crate::Error> = $v;)?
        const _: fn() = $crate::__rt::assert_config::<$t>;

        const __PODPLUG_VALIDATE: ::core::option::Option<fn(&$crate::HookRequest, &$t) -> ::core::result::Result<(), $crate::Error>> =
            $crate::__plugin_opt!($($v)?);

        const __PODPLUG_PLUGIN: $crate::Plugin = $crate::Plugin {
            on_pod_create: $crate::__plugin_opt!($({
                fn __podplug_create(req: &$crate::HookRequest) -> ::core::result::Result<$crate::Mutations, $crate::Error> {
                    $crate::__rt::typed_hook::<$t>(req, __PODPLUG_VALIDATE, $c)
                }
                __podplug_create as $crate::HookFn
            })?),
            on_pod_ready: $crate::__plugin_opt!($({
                fn __podplug_ready(req: &$crate::HookRequest) -> ::core::result::Result<$crate::Mutations, $crate::Error> {
                    $crate::__rt::typed_hook::<$t>(req, __PODPLUG_VALIDATE, $r)
                }
                __podplug_ready as $crate::HookFn
            })?),
            validate_config: ::core::option::Option::Some({
                fn __podplug_validate(req: &$crate::HookRequest) -> ::core::result::Result<(), $crate::Error> {
                    $crate::__rt::typed_validate::<$t>(req, __PODPLUG_VALIDATE)
                }
                __podplug_validate as $crate::ValidateFn
            }),
        };
        $crate::__plugin_exports! { [$($c)?] [$($r)?] [config] [$($m),*] }
    };
    // Without a config type: hooks are `fn(&HookRequest)`.
    ([$($c:path)?] [$($r:path)?] [$($v:path)?] [] [$($m:ident),*]) => {
        $(const _: $crate::HookFn = $c;)?
        $(const _: $crate::HookFn = $r;)?
        $(const _: $crate::ValidateFn = $v;)?

        const __PODPLUG_VALIDATE: ::core::option::Option<$crate::ValidateFn> = $crate::__plugin_opt!($($v)?);

        const __PODPLUG_PLUGIN: $crate::Plugin = $crate::Plugin {
            on_pod_create: $crate::__plugin_opt!($({
                fn __podplug_create(req: &$crate::HookRequest) -> ::core::result::Result<$crate::Mutations, $crate::Error> {
                    $crate::__rt::plain_hook(req, __PODPLUG_VALIDATE, $c)
                }
                __podplug_create as $crate::HookFn
            })?),
            on_pod_ready: $crate::__plugin_opt!($({
                fn __podplug_ready(req: &$crate::HookRequest) -> ::core::result::Result<$crate::Mutations, $crate::Error> {
                    $crate::__rt::plain_hook(req, __PODPLUG_VALIDATE, $r)
                }
                __podplug_ready as $crate::HookFn
            })?),
            validate_config: __PODPLUG_VALIDATE,
        };
        $crate::__plugin_exports! { [$($c)?] [$($r)?] [$($v)?] [$($m),*] }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_exports {
    ([$($c:path)?] [$($r:path)?] [$($validates:tt)?] [$($m:ident),*]) => {
        /// This crate's podplug plugin, as exported to the host; call its
        /// methods from native tests.
        pub static PLUGIN: $crate::Plugin = __PODPLUG_PLUGIN;

        const __PODPLUG_METADATA: $crate::metadata::Metadata = $crate::metadata::Metadata::new(
            &__PODPLUG_PLUGIN,
            ::core::env!("CARGO_PKG_NAME"),
            ::core::env!("CARGO_PKG_VERSION"),
            &[$($crate::__ops::$m),*],
        );

        #[cfg(target_arch = "wasm32")]
        #[link_section = "podplug.metadata"]
        #[used]
        static PODPLUG_METADATA: [u8; __PODPLUG_METADATA.encoded_len()] = __PODPLUG_METADATA.encode();

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn podplug_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn podplug_alloc(len: usize) -> *mut u8 {
            $crate::__rt::alloc(len)
        }

        $(
            #[cfg(target_arch = "wasm32")]
            #[no_mangle]
            pub extern "C" fn podplug_on_pod_create(ptr: *const u8, len: usize) -> u64 {
                let _ = $c; // (ties this export to the on_pod_create key)
                // SAFETY: the host wrote `len` request bytes at `ptr` (docs/abi.md, "One call").
                unsafe { $crate::__rt::export(&PLUGIN, "create", ptr, len) }
            }
        )?

        $(
            #[cfg(target_arch = "wasm32")]
            #[no_mangle]
            pub extern "C" fn podplug_on_pod_ready(ptr: *const u8, len: usize) -> u64 {
                let _ = $r; // (ties this export to the on_pod_ready key)
                // SAFETY: the host wrote `len` request bytes at `ptr` (docs/abi.md, "One call").
                unsafe { $crate::__rt::export(&PLUGIN, "ready", ptr, len) }
            }
        )?

        $(
            #[cfg(target_arch = "wasm32")]
            #[no_mangle]
            pub extern "C" fn podplug_validate_config(ptr: *const u8, len: usize) -> u64 {
                let _ = ::core::stringify!($validates); // (exported with a config type or validator)
                // SAFETY: the host wrote `len` request bytes at `ptr` (docs/abi.md, "One call").
                unsafe { $crate::__rt::export(&PLUGIN, "validate_config", ptr, len) }
            }
        )?
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_opt {
    () => {
        ::core::option::Option::None
    };
    ($f:expr) => {
        ::core::option::Option::Some($f)
    };
}
