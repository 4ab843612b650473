;; A core module that imports a host function Weft never grants
;; (`env.not_granted`): instantiation must fail with a clear error.
(module
  (import "env" "not_granted" (func $not_granted))
  (memory (export "memory") 1)
  (func (export "_start")
    call $not_granted))
