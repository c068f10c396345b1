;; The smallest valid guest: exports memory and _start, flushes an empty list.
(module
  (import "env" "__flush" (func $flush (param i32)))
  (memory (export "memory") 1)
  ;; An empty KeyValueFlush: length prefix 0 at offset 16, data at 20.
  (func (export "_start") (call $flush (i32.const 20)))
  (func (export "answer") (result i32) (i32.const 36))
  (data (i32.const 32) "\02\00\00\00ok"))
