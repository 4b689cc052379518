//! lws-standard-labels: the LeaderWorkerSet labels on every Pod of a
//! ModelServing that a LeaderWorkerSet owns, as Kthena's Go built-in of the
//! same name sets them (pkg/model-serving-controller/plugins/lws_labels_plugin.go),
//! so tools that select LWS Pods by label keep working when LWS delegates to
//! ModelServing. Like the Go plugin it overwrites the labels a Pod template
//! already sets; `overwrite: false` keeps them instead (README.md).

use podplug_sdk::{Error, HookRequest, Mutations, Value};
use serde::Deserialize;

mod sha1;

pub const NAME_LABEL: &str = "leaderworkerset.sigs.k8s.io/name";
pub const GROUP_INDEX_LABEL: &str = "leaderworkerset.sigs.k8s.io/group-index";
pub const WORKER_INDEX_LABEL: &str = "leaderworkerset.sigs.k8s.io/worker-index";
pub const GROUP_KEY_LABEL: &str = "leaderworkerset.sigs.k8s.io/group-key";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// Replace labels the Pod already carries, as Kthena's Go plugin always does.
    #[serde(default = "kthena_overwrites")]
    overwrite: bool,
}

fn kthena_overwrites() -> bool {
    true
}

fn create(req: &HookRequest, config: &Config) -> Result<Mutations, Error> {
    let mut m = Mutations::new();
    let lws = match owning_lws(&req.model_serving().metadata.owner_references) {
        Some(name) => name,
        // Not delegated from a LeaderWorkerSet: nothing to mirror.
        None => return Ok(m),
    };
    let pod = req.pod();
    let group_index = match group_ordinal(req.serving_group()) {
        Some(i) => i,
        None => return Err(Error::new(format!("invalid servingGroup {:?} for pod {}", req.serving_group(), pod.name()))),
    };
    let worker_index = worker_index(req.is_entry(), pod.name())?;
    let group_key = sha1::hex(format!("{}-{}", lws, group_index).as_bytes());

    let labels = [
        (NAME_LABEL, lws.to_string()),
        (GROUP_INDEX_LABEL, group_index.to_string()),
        (WORKER_INDEX_LABEL, worker_index.to_string()),
        (GROUP_KEY_LABEL, group_key),
    ];
    for (key, value) in labels {
        match pod.label(key) {
            Some(existing) if existing == value => {}
            Some(_) if !config.overwrite => {}
            _ => {
                m.set_label(key, value);
            }
        }
    }
    Ok(m)
}

/// The name of the first owner reference of kind LeaderWorkerSet with a name.
fn owning_lws(owners: &[Value]) -> Option<&str> {
    owners.iter().find_map(|r| {
        let kind = r.get("kind").and_then(Value::as_str)?;
        let name = r.get("name").and_then(Value::as_str)?;
        (kind == "LeaderWorkerSet" && !name.is_empty()).then(|| name)
    })
}

/// The ordinal of a serving group name `<modelServing>-<n>`, as Kthena's
/// GetParentNameAndOrdinal reads it: the digits after the last `-`, all the
/// way to the end, fitting a 32-bit signed integer.
fn group_ordinal(group: &str) -> Option<i32> {
    let (_, digits) = group.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i32>().ok()
}

/// 0 for the entry Pod; else the number after the last `-` of the Pod name
/// (`<group>-<roleID>-<n>`), with the errors of Go's strconv.Atoi.
fn worker_index(is_entry: bool, pod_name: &str) -> Result<i64, Error> {
    if is_entry {
        return Ok(0);
    }
    let suffix = match pod_name.rsplit_once('-') {
        Some((_, s)) if !s.is_empty() => s,
        _ => return Err(Error::new(format!("cannot derive worker-index from pod name {:?}", pod_name))),
    };
    atoi(suffix).map_err(|why| {
        Error::new(format!(
            "cannot derive worker-index from pod name {:?}: strconv.Atoi: parsing {:?}: {}",
            pod_name, suffix, why
        ))
    })
}

/// Go's strconv.Atoi on a 64-bit platform: an optional sign, then decimal digits.
fn atoi(s: &str) -> Result<i64, &'static str> {
    let digits = s.strip_prefix('+').or_else(|| s.strip_prefix('-')).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid syntax");
    }
    // Rust's parse takes the same optional sign.
    s.parse::<i64>().map_err(|_| "value out of range")
}

podplug_sdk::plugin! {
    config: Config,
    on_pod_create: create,
    mutations: [setLabel],
}

#[cfg(test)]
mod tests {
    use super::*;
    use podplug_sdk::testing::{self, Request};

    fn request(entry: bool, group: &str, pod: &str, owners: &str) -> Request {
        Request::create()
            .model_serving_json(&format!(
                r#"{{"metadata": {{"name": "ms", "namespace": "default", "ownerReferences": {}}},
                    "spec": {{"template": {{"roles": [{{"name": "default", "workerReplicas": 3}}]}}}}}}"#,
                owners
            ))
            .serving_group(group)
            .role("default", "default-0", entry)
            .pod_json(&format!(r#"{{"metadata": {{"name": "{}", "namespace": "default"}}, "spec": {{"containers": [{{"name": "main"}}]}}}}"#, pod))
    }

    const LWS: &str = r#"[{"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "my-lws", "uid": "u"}]"#;

    #[test]
    fn worker_pod_gets_the_four_labels() {
        let ops = PLUGIN.create(&request(false, "my-lws-2", "my-lws-2-default-0-3", LWS).build()).unwrap();
        testing::assert_ops(
            &ops,
            &format!(
                r#"[{{"op": "setLabel", "key": "leaderworkerset.sigs.k8s.io/name", "value": "my-lws"}},
                    {{"op": "setLabel", "key": "leaderworkerset.sigs.k8s.io/group-index", "value": "2"}},
                    {{"op": "setLabel", "key": "leaderworkerset.sigs.k8s.io/worker-index", "value": "3"}},
                    {{"op": "setLabel", "key": "leaderworkerset.sigs.k8s.io/group-key", "value": "{}"}}]"#,
                sha1::hex(b"my-lws-2")
            ),
        );
    }

    /// The worker Pod `my-lws-2-default-0-3` with these labels from its template.
    fn with_labels(req: Request, labels: &str) -> Request {
        req.pod_json(&format!(
            r#"{{"metadata": {{"name": "my-lws-2-default-0-3", "namespace": "default", "labels": {}}}, "spec": {{"containers": [{{"name": "main"}}]}}}}"#,
            labels
        ))
    }

    #[test]
    fn labels_the_template_set_are_overwritten_as_kthena_does() {
        let req = with_labels(request(false, "my-lws-2", "my-lws-2-default-0-3", LWS), r#"{"leaderworkerset.sigs.k8s.io/name": "from-template", "leaderworkerset.sigs.k8s.io/group-index": "2"}"#);
        let ops = PLUGIN.create(&req.build()).unwrap();
        let keys: Vec<&str> = ops.iter().filter_map(|m| m.get("key").and_then(Value::as_str)).collect();
        // group-index already has the derived value: no op needed for it
        assert_eq!(keys, [NAME_LABEL, WORKER_INDEX_LABEL, GROUP_KEY_LABEL]);
        assert_eq!(ops.ops()[0].get("value").and_then(Value::as_str), Some("my-lws"));
    }

    #[test]
    fn overwrite_false_keeps_the_templates_labels() {
        let req = with_labels(request(false, "my-lws-2", "my-lws-2-default-0-3", LWS), r#"{"leaderworkerset.sigs.k8s.io/name": "from-template"}"#)
            .config_json(r#"{"overwrite": false}"#);
        let ops = PLUGIN.create(&req.build()).unwrap();
        assert!(ops.iter().all(|m| m.get("key").and_then(Value::as_str) != Some(NAME_LABEL)));
        assert_eq!(ops.len(), 3);
    }

    #[test]
    fn no_leaderworkerset_owner_means_no_ops() {
        let owners = r#"[{"kind": "Deployment", "name": "x"}, {"kind": "LeaderWorkerSet", "name": ""}]"#;
        assert!(PLUGIN.create(&request(true, "ms-0", "ms-0-default-0-0", owners).build()).unwrap().is_empty());
    }

    #[test]
    fn group_ordinal_follows_kthena() {
        assert_eq!(group_ordinal("vllm-sample-0"), Some(0));
        assert_eq!(group_ordinal("a-b-17"), Some(17));
        assert_eq!(group_ordinal("a-007"), Some(7));
        assert_eq!(group_ordinal("nodash"), None);
        assert_eq!(group_ordinal("a-1x"), None);
        assert_eq!(group_ordinal("a-"), None);
        assert_eq!(group_ordinal("a-2147483648"), None); // ParseInt(.., 32) overflows
    }

    #[test]
    fn worker_index_errors_read_like_go() {
        assert_eq!(worker_index(true, "whatever").unwrap(), 0);
        assert_eq!(worker_index(false, "p-+4").unwrap(), 4);
        assert_eq!(worker_index(false, "p-").unwrap_err().message(), "cannot derive worker-index from pod name \"p-\"");
        assert_eq!(
            worker_index(false, "p-x").unwrap_err().message(),
            "cannot derive worker-index from pod name \"p-x\": strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            worker_index(false, "p-99999999999999999999").unwrap_err().message(),
            "cannot derive worker-index from pod name \"p-99999999999999999999\": strconv.Atoi: parsing \"99999999999999999999\": value out of range"
        );
    }

    #[test]
    fn unknown_config_fields_are_refused() {
        let req = Request::validate_config().config_json(r#"{"overwrite": "yes"}"#);
        let response = testing::decode_response(&PLUGIN.call("validate_config", &req.to_msgpack()));
        assert_eq!(
            response.get("message").and_then(Value::as_str),
            Some("field overwrite: invalid type: string \"yes\", expected a boolean")
        );
    }
}
