//! A plugin for the SDK's own host-side tests (tests/sdk/test_rust_sdk.py):
//! what the conformance vectors cannot check because it is not a response —
//! a panic's message reaching the host, log levels, typed-config validation.
//!
//! Config: `{action: "ok" | "panic" | "log" | "error", gpus?: u32}`.

use podplug_sdk::{bail, Error, HookRequest, Mutations};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    action: Action,
    #[serde(default)]
    gpus: Option<u32>,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Action {
    Ok,
    Panic,
    Log,
    Error,
}

fn create(req: &HookRequest, config: &Config) -> Result<Mutations, Error> {
    let mut m = Mutations::new();
    match config.action {
        Action::Ok => {}
        Action::Panic => panic!("no GPUs left for {}", req.pod().name()),
        Action::Log => {
            podplug_sdk::debug!("debug {}", 0);
            podplug_sdk::info!("info {}", 1);
            podplug_sdk::warn!("warn {}", 2);
            podplug_sdk::error!("error {}", 3);
        }
        Action::Error => bail!("refused {}", req.pod().name()),
    }
    if let Some(gpus) = config.gpus {
        m.set_resource_limit("nvidia.com/gpu", gpus);
    }
    Ok(m)
}

fn validate(_req: &HookRequest, config: &Config) -> Result<(), Error> {
    if config.gpus == Some(0) {
        bail!("field gpus: must be at least 1");
    }
    Ok(())
}

podplug_sdk::plugin! {
    config: Config,
    validate_config: validate,
    on_pod_create: create,
}
