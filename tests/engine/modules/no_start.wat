;; Exports memory but no _start: refused at load.
(module
  (memory (export "memory") 1)
  (func (export "start") nop))
