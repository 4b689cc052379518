;; An Extism plugin that copies its input to its output, 8 bytes a host call
;; (the Extism kernel's own calling convention), for the baseline row.
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u64" (func $load64 (param i64) (result i64)))
  (import "extism:host/env" "input_load_u8" (func $load8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store64 (param i64 i64)))
  (import "extism:host/env" "store_u8" (func $store8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "echo") (result i32) (local $n i64) (local $out i64) (local $i i64)
    call $input_length local.set $n
    local.get $n call $alloc local.set $out
    (block $done8 (loop $copy8
      local.get $i i64.const 8 i64.add local.get $n i64.gt_u br_if $done8
      local.get $out local.get $i i64.add
      local.get $i call $load64
      call $store64
      local.get $i i64.const 8 i64.add local.set $i
      br $copy8))
    (block $done (loop $copy
      local.get $i local.get $n i64.ge_u br_if $done
      local.get $out local.get $i i64.add
      local.get $i call $load8
      call $store8
      local.get $i i64.const 1 i64.add local.set $i
      br $copy))
    local.get $out local.get $n call $output_set
    i32.const 0))
