;; expect: AbiMismatch: module speaks 3, host speaks 1 and 2
(module
  (memory (export "memory") 1)
  (func (export "podplug_abi_version") (result i32) i32.const 3)
  (func (export "podplug_alloc") (param i32) (result i32) i32.const 1024))
