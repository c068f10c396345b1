;; Starts with 64 pages (4 MiB) of memory: refused under a smaller cap.
(module
  (import "env" "__flush" (func $flush (param i32)))
  (memory (export "memory") 64 1000)
  (func (export "_start") (call $flush (i32.const 20))))
