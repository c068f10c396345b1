;; Defines a memory but does not export it: refused at load.
(module
  (memory 1)
  (func (export "_start") nop))
