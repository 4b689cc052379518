;; expect: InvalidOutput: podplug_alloc
(module
  (memory (export "memory") 1)
  (func (export "podplug_abi_version") (result i32) i32.const 1)
  (func (export "podplug_alloc") (param i32) (result i32) i32.const 0)
  (func (export "podplug_on_pod_create") (param i32 i32) (result i64) i64.const 0))
