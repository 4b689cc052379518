;; expect: Trap: abort: bad config at index.ts:7:3
;; AssemblyScript's abort(msg, file, line, col): UTF-16 strings, byte length at ptr-4.
(module
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "podplug_abi_version") (result i32) i32.const 1)
  (func (export "podplug_alloc") (param $n i32) (result i32) (local $p i32)
    global.get $heap local.set $p
    global.get $heap local.get $n i32.add global.set $heap
    (block $ok (loop $grow
      global.get $heap memory.size i32.const 16 i32.shl i32.le_u br_if $ok
      i32.const 1 memory.grow i32.const -1 i32.eq if i32.const 0 return end
      br $grow))
    local.get $p)
  (data (i32.const 60) "\14\00\00\00b\00a\00d\00 \00c\00o\00n\00f\00i\00g\00")
  (data (i32.const 124) "\10\00\00\00i\00n\00d\00e\00x\00.\00t\00s\00")
  (func (export "podplug_on_pod_create") (param i32 i32) (result i64)
    i32.const 64 i32.const 128 i32.const 7 i32.const 3 call $abort
    i64.const 0))
