;; expect: MissingExport: memory
(module
  (memory 1)
  (func (export "podplug_abi_version") (result i32) i32.const 1)
  (func (export "podplug_alloc") (param i32) (result i32) i32.const 1024))
