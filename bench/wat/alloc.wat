  (global $heap (mut i32) (i32.const 4096))
  (func (export "podplug_abi_version") (result i32) i32.const 1)
  (func (export "podplug_alloc") (param $n i32) (result i32) (local $p i32)
    global.get $heap local.set $p
    global.get $heap local.get $n i32.add global.set $heap
    (block $ok
      (loop $grow
        global.get $heap memory.size i32.const 16 i32.shl i32.le_u br_if $ok
        i32.const 1 memory.grow i32.const -1 i32.eq
        if i32.const 0 return end
        br $grow))
    local.get $p)
