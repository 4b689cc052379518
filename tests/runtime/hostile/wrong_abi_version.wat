;; expect: AbiMismatch: module speaks 2, host speaks 1
(module
  (memory (export "memory") 1)
  (func (export "podplug_abi_version") (result i32) i32.const 2)
  (func (export "podplug_alloc") (param i32) (result i32) i32.const 1024))
