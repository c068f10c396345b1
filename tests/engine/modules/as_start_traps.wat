;; A start section that traps (an AssemblyScript top-level statement that aborts): no instance can
;; be made, every time alike.
(module
  (import "env" "__flush" (func $flush (param i32)))
  (memory (export "memory") 1)
  (func $init unreachable)
  (start $init)
  (func (export "_start") (call $flush (i32.const 20))))
