;; Bulk-memory instructions, as AssemblyScript emits them: memory.init from passive data segments
;; (with their DataCount section), memory.copy and memory.fill. `_start` assembles the flush
;; "bulk" -> "hello" from two passive segments; the view `filled` answers 16 bytes of 0x5a.
(module
  (import "env" "__flush" (func $flush (param i32)))
  (memory (export "memory") 1)
  (data $key "\0a\04bulk")
  (data $value "\0a\05hello")
  (func (export "_start")
    (memory.fill (i32.const 1024) (i32.const 0xff) (i32.const 64))
    (memory.init $key (i32.const 1024) (i32.const 0) (i32.const 6))
    (memory.init $value (i32.const 2048) (i32.const 0) (i32.const 7))
    (memory.copy (i32.const 1030) (i32.const 2048) (i32.const 7))
    (i32.store (i32.const 1020) (i32.const 13))
    (call $flush (i32.const 1024)))
  (func (export "filled") (result i32)
    (i32.store (i32.const 3000) (i32.const 16))
    (memory.fill (i32.const 3004) (i32.const 0x5a) (i32.const 16))
    (i32.const 3004)))
