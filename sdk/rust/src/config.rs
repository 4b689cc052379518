//! Typed config: the entry's config deserialized (src/de.rs) into the
//! plugin's own type, with errors that name the field they happened in
//! (`field gpu.count: invalid type: string "x", expected u32`): serde's own
//! messages do not, and a config error that does not say where is a poor
//! `validate_config` answer. serde_path_to_error tracks the path.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use crate::value::Value;

/// A value did not fit the Rust type asked for. `Display` gives
/// `field <path>: <serde's message>`, or the bare message at the top level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    path: String,
    message: String,
}

impl ConfigError {
    /// The dotted path of the offending field (`steps[2].call`), empty at the top.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// serde's message without the path.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "field {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Deserializes `T` from the MessagePack `bytes` of a config, strictly (nil
/// is only an `Option`'s `None`), naming the field of the first error.
pub fn from_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    // serde_path_to_error records only field names given as strings.
    let mut de = crate::de::Deserializer::naming_fields(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let message = e.inner().to_string();
        let mut segments: Vec<&Segment> = e.path().iter().collect();
        // An unknown key is the map's problem: name the map, not the key
        // (the message names it).
        if message.starts_with("unknown field `") && matches!(segments.last(), Some(Segment::Map { .. })) {
            segments.pop();
        }
        let mut path = String::new();
        for segment in segments {
            match segment {
                Segment::Seq { index } => {
                    path.push('[');
                    path.push_str(&index.to_string());
                    path.push(']');
                }
                Segment::Map { key } | Segment::Enum { variant: key } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                Segment::Unknown => {}
            }
        }
        ConfigError { path, message }
    })?;
    de.end().map_err(|e| ConfigError { path: String::new(), message: e.to_string() })?;
    Ok(value)
}

/// Deserializes `T` from a [`Value`] the same way (e.g. a nested part of a config).
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, ConfigError> {
    from_msgpack(&value.to_msgpack())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{list, map};
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Config {
        gpu_count: u32,
        #[serde(default)]
        runtime_class: Option<String>,
        #[serde(default)]
        tolerations: Vec<Tol>,
        #[serde(default)]
        mode: Option<Mode>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Tol {
        key: String,
        seconds: Option<i64>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Limit(u8),
    }

    fn cfg(v: Value) -> Result<Config, String> {
        from_value::<Config>(&v).map_err(|e| e.to_string())
    }

    #[test]
    fn typed_config_reads_nested_fields() {
        let c = cfg(map! {
            "gpuCount" => 8, "runtimeClass" => "nvidia",
            "tolerations" => list![map! { "key" => "a", "seconds" => -5 }], "mode" => "fast",
        })
        .unwrap();
        assert_eq!(c.gpu_count, 8);
        assert_eq!(c.tolerations, vec![Tol { key: "a".into(), seconds: Some(-5) }]);
        assert_eq!(c.mode, Some(Mode::Fast));
        assert_eq!(cfg(map! { "gpuCount" => 1, "mode" => map! { "limit" => 3 } }).unwrap().mode, Some(Mode::Limit(3)));
    }

    #[test]
    fn errors_name_the_field_path() {
        assert_eq!(cfg(map! { "gpuCount" => "8" }).unwrap_err(), "field gpuCount: invalid type: string \"8\", expected u32");
        assert_eq!(cfg(map! { "gpuCount" => -1 }).unwrap_err(), "field gpuCount: invalid value: integer `-1`, expected u32");
        assert_eq!(
            cfg(map! { "gpuCount" => 1, "tolerations" => list![map! { "key" => "a" }, map! { "key" => 5 }] }).unwrap_err(),
            "field tolerations[1].key: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            cfg(map! { "gpuCount" => 1, "tolerations" => list![map! { "key" => "a", "x" => 1 }] }).unwrap_err(),
            "field tolerations[0]: unknown field `x`, expected `key` or `seconds`"
        );
        assert_eq!(cfg(map! {}).unwrap_err(), "missing field `gpuCount`");
        assert!(cfg(map! { "gpuCount" => 1, "extra" => 1 }).unwrap_err().contains("unknown field `extra`"));
        assert_eq!(cfg(map! { "gpuCount" => 1, "mode" => "slow" }).unwrap_err(),
            "field mode: unknown variant `slow`, expected `fast` or `limit`");
    }

    #[test]
    fn nil_is_only_an_options_none() {
        assert!(cfg(map! { "gpuCount" => Value::Nil }).is_err());
        assert_eq!(cfg(map! { "gpuCount" => 1, "runtimeClass" => Value::Nil }).unwrap().runtime_class, None);
    }
}
