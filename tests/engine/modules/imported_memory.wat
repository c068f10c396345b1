;; Imports its memory instead of defining it: refused at load.
(module
  (import "env" "memory" (memory 1))
  (export "memory" (memory 0))
  (func (export "_start") nop))
