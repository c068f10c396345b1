;; Grows memory by the page count in the payload's first u32 and flushes "grow" -> the i32 that
;; memory.grow returned (little-endian), so tests see exactly what the guest saw.
(module
  (import "env" "__host_len" (func $host_len (result i32)))
  (import "env" "__load_input" (func $load_input (param i32)))
  (import "env" "__flush" (func $flush (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (local $result i32)
    ;; Input (height, pages) at 1024.
    (call $load_input (i32.const 1024))
    (local.set $result (memory.grow (i32.load (i32.const 1028))))
    ;; KeyValueFlush at 64 (length prefix at 60): 0a 04 "grow" 0a 04 <result LE>.
    (i32.store (i32.const 60) (i32.const 12))
    (i32.store8 (i32.const 64) (i32.const 0x0a))
    (i32.store8 (i32.const 65) (i32.const 4))
    (i32.store (i32.const 66) (i32.const 0x776f7267))
    (i32.store8 (i32.const 70) (i32.const 0x0a))
    (i32.store8 (i32.const 71) (i32.const 4))
    (i32.store (i32.const 72) (local.get $result))
    (call $flush (i32.const 64)))
  (func (export "pages") (result i32)
    (i32.store (i32.const 200) (i32.const 4))
    (i32.store (i32.const 204) (memory.size))
    (i32.const 204)))
