//! Native test harness: build a request from JSON or a builder, run your
//! plugin through the same path the host uses, assert on the ops.
//!
//! ```
//! use podplug_sdk::{testing, HookRequest, Mutations, Error};
//!
//! fn create(req: &HookRequest) -> Result<Mutations, Error> {
//!     let mut m = Mutations::new();
//!     if req.is_entry() {
//!         m.set_label("role", req.role_name());
//!     }
//!     Ok(m)
//! }
//! podplug_sdk::plugin! { on_pod_create: create }
//!
//! let req = testing::Request::create()
//!     .role("prefill", "prefill-0", true)
//!     .pod_json(r#"{"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main"}]}}"#)
//!     .build();
//! let ops = PLUGIN.create(&req).unwrap();
//! testing::assert_ops(&ops, r#"[{"op": "setLabel", "key": "role", "value": "prefill"}]"#);
//! ```
//!
//! Fixtures are JSON (the Kubernetes JSON of a Pod, or a whole request);
//! keys keep their order, so passthrough objects compare as the host sees them.

use crate::log::{native, Level};
use crate::mutations::Mutations;
use crate::request::HookRequest;
use crate::value::{Map, Value};

/// Parses JSON into an ordered [`Value`]. Panics with the parse error (tests).
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON fixture: {}\n{}", e, text))
}

/// Renders a value as pretty JSON, for failure messages.
pub fn to_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Builds a request as the host would send it.
#[derive(Clone, Debug)]
pub struct Request {
    fields: Map,
}

impl Request {
    fn new(hook: &str) -> Self {
        let mut fields = Map::new();
        fields.push("abi", crate::ABI_VERSION);
        fields.push("hook", hook);
        fields.push("plugin", crate::map! { "name" => "test", "config" => crate::map! {} });
        Request { fields }
    }

    pub fn create() -> Self {
        Request::new("create")
    }

    pub fn ready() -> Self {
        Request::new("ready")
    }

    pub fn validate_config() -> Self {
        Request::new("validate_config")
    }

    /// A whole request from JSON (e.g. one captured with the CLI).
    pub fn from_json(text: &str) -> Self {
        match json(text) {
            Value::Map(fields) => Request { fields },
            other => panic!("a request fixture must be a JSON object, got {}", other.type_name()),
        }
    }

    fn plugin_field(mut self, key: &str, value: Value) -> Self {
        if let Some(Value::Map(p)) = self.fields.get_mut("plugin") {
            p.insert(key, value);
        }
        self
    }

    pub fn plugin_name(self, name: &str) -> Self {
        self.plugin_field("name", Value::from(name))
    }

    pub fn config(self, config: impl Into<Value>) -> Self {
        self.plugin_field("config", config.into())
    }

    pub fn config_json(self, text: &str) -> Self {
        self.config(json(text))
    }

    pub fn model_serving(mut self, ms: impl Into<Value>) -> Self {
        self.fields.insert("modelServing", ms.into());
        self
    }

    pub fn model_serving_json(self, text: &str) -> Self {
        self.model_serving(json(text))
    }

    /// The Pod's role (`role`, ABI v2): its entry of `spec.template.roles`
    /// without templates.
    pub fn role_spec(mut self, role: impl Into<Value>) -> Self {
        self.fields.insert("role", role.into());
        self
    }

    pub fn role_spec_json(self, text: &str) -> Self {
        self.role_spec(json(text))
    }

    pub fn serving_group(mut self, group: &str) -> Self {
        self.fields.insert("servingGroup", group);
        self
    }

    /// `roleName`, `roleID` and `isEntry`.
    pub fn role(mut self, name: &str, id: &str, is_entry: bool) -> Self {
        self.fields.insert("roleName", name);
        self.fields.insert("roleID", id);
        self.fields.insert("isEntry", is_entry);
        self
    }

    pub fn pod(mut self, pod: impl Into<Value>) -> Self {
        self.fields.insert("pod", pod.into());
        self
    }

    pub fn pod_json(self, text: &str) -> Self {
        self.pod(json(text))
    }

    /// Sets any request key (including ones this SDK does not model).
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key, value.into());
        self
    }

    pub fn to_value(&self) -> Value {
        Value::Map(self.fields.clone())
    }

    /// The MessagePack bytes the host would send (for `PLUGIN.call`).
    pub fn to_msgpack(&self) -> Vec<u8> {
        self.to_value().to_msgpack()
    }

    /// The typed request; panics if it does not decode (a broken fixture).
    /// Its bytes are kept for the rest of the test process (the request's
    /// views borrow from them, as they do from the host's bytes in wasm).
    pub fn build(&self) -> HookRequest {
        let bytes: &'static [u8] = Box::leak(self.to_msgpack().into_boxed_slice());
        let req = HookRequest::from_msgpack(bytes).unwrap_or_else(|e| panic!("{}", e));
        let _ = (req.pod(), req.model_serving(), req.role());
        if let Some(e) = req.problem() {
            panic!("{}", e);
        }
        req
    }
}

/// A Pod from its Kubernetes JSON, decoded as a request's `pod` is.
pub fn pod_json(text: &str) -> crate::Pod {
    Request::create().pod_json(text).build().pod().clone()
}

/// Asserts the ops equal `expected_json` (a JSON array of op objects), key
/// order included; on failure prints both sides as JSON.
pub fn assert_ops(ops: &Mutations, expected_json: &str) {
    let actual = ops.to_value();
    let expected = json(expected_json);
    if actual != expected {
        panic!("mutations differ\n--- expected\n{}\n--- actual\n{}", to_json(&expected), to_json(&actual));
    }
}

/// Decodes a response from [`Plugin::call`](crate::Plugin::call) for assertions.
pub fn decode_response(bytes: &[u8]) -> Value {
    Value::from_msgpack(bytes).unwrap_or_else(|e| panic!("response is not MessagePack: {}", e))
}

/// Lines logged on this thread since the last call, oldest first.
pub fn take_logs() -> Vec<(Level, String)> {
    native::LINES.with(|l| std::mem::take(&mut *l.borrow_mut()))
}
