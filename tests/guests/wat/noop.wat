;; The smallest WASI command: exports memory and a `_start` that does nothing.
(module
  (memory (export "memory") 1)
  (func (export "_start")))
