//! Runs every shared conformance vector through the plugin natively (the same
//! `Plugin::call` path the wasm exports use) and requires the exact bytes.
//! `sdk/rust/build.sh --test` runs it; tests/sdk/test_conformance_rust.py
//! does the same through the real host and the wasm module.

use std::path::PathBuf;

use podplug_conformance::PLUGIN;
use podplug_sdk::Value;

fn vectors_dir() -> PathBuf {
    match std::env::var_os("PODPLUG_VECTORS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors"),
    }
}

#[test]
fn every_vector_answers_the_reference_bytes() {
    let dir = vectors_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {} (set PODPLUG_VECTORS)", dir.display(), e))
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".request.msgpack").map(String::from))
        .collect();
    names.sort();
    assert!(names.len() >= 30, "only {} vectors in {}", names.len(), dir.display());

    let mut failures = Vec::new();
    for name in &names {
        let request = std::fs::read(dir.join(format!("{}.request.msgpack", name))).unwrap();
        let expected = std::fs::read(dir.join(format!("{}.response.msgpack", name))).unwrap();
        let hook = Value::from_msgpack(&request).unwrap().get("hook").and_then(Value::as_str).unwrap().to_string();
        let actual = PLUGIN.call(&hook, &request);
        if actual != expected {
            let show = |b: &[u8]| Value::from_msgpack(b).map(|v| v.to_string()).unwrap_or_else(|e| e.to_string());
            let (a, e) = (show(&actual), show(&expected));
            failures.push(format!("{}:\n  got      {:.600}\n  expected {:.600}", name, a, e));
        }
    }
    assert!(failures.is_empty(), "{} of {} vectors differ:\n{}", failures.len(), names.len(), failures.join("\n"));
}
