;; Imports an ABI function under the wrong signature: refused at load, naming both signatures.
(module
  (import "env" "__get_len" (func (param i64) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") nop))
