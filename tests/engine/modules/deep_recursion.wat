;; Recurses without end: V8's native stack overflows (a host outcome, not the block's).
(module
  (import "env" "__flush" (func $flush (param i32)))
  (memory (export "memory") 1)
  (func $recurse (param i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func (export "_start") (drop (call $recurse (i32.const 0))) (call $flush (i32.const 20))))
