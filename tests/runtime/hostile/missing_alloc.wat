;; expect: MissingExport: podplug_alloc
(module
  (memory (export "memory") 1)
  (func (export "podplug_abi_version") (result i32) i32.const 1))
