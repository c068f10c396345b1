;; The exports AssemblyScript's runtime adds (--exportRuntime): functions that take parameters
;; (__new, __pin, __unpin) or return nothing (__collect), and a global (__rtti_base). None of them
;; is a view; `answer` is.
(module
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (import "env" "__flush" (func $flush (param i32)))
  (memory (export "memory") 1)
  (global (export "__rtti_base") i32 (i32.const 1024))
  (func (export "__new") (param i32 i32) (result i32) (local.get 0))
  (func (export "__pin") (param i32) (result i32) (local.get 0))
  (func (export "__unpin") (param i32))
  (func (export "__collect"))
  (func (export "_start") (call $flush (i32.const 20)))
  (func (export "answer") (result i32) (i32.const 36))
  (data (i32.const 32) "\02\00\00\00ok"))
