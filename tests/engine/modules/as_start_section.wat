;; A start section, as AssemblyScript emits for its runtime and top-level code: $init runs once at
;; instantiation, before any export, and counts its runs in a global. `_start` flushes
;; "starts" -> that count (u32 LE); the view `starts` answers it.
(module
  (import "env" "__flush" (func $flush (param i32)))
  (memory (export "memory") 1)
  (global $starts (mut i32) (i32.const 0))
  (func $init (global.set $starts (i32.add (global.get $starts) (i32.const 1))))
  (start $init)
  (func (export "_start")
    ;; KeyValueFlush at 64 (length prefix at 60): 0a 06 "starts" 0a 04 <count LE>.
    (i32.store (i32.const 60) (i32.const 14))
    (i32.store8 (i32.const 64) (i32.const 0x0a))
    (i32.store8 (i32.const 65) (i32.const 6))
    (i32.store (i32.const 66) (i32.const 0x72617473))  ;; "star"
    (i32.store16 (i32.const 70) (i32.const 0x7374))    ;; "ts"
    (i32.store8 (i32.const 72) (i32.const 0x0a))
    (i32.store8 (i32.const 73) (i32.const 4))
    (i32.store (i32.const 74) (global.get $starts))
    (call $flush (i32.const 64)))
  (func (export "starts") (result i32)
    (i32.store (i32.const 200) (i32.const 4))
    (i32.store (i32.const 204) (global.get $starts))
    (i32.const 204)))
