;; A component that targets neither a WASI command nor wasi:http/proxy:
;; it exports only a trivial function `hello`. Deploying it must be rejected.
(component
  (core module $m
    (func (export "hello") (result i32)
      i32.const 42))
  (core instance $i (instantiate $m))
  (func (export "hello") (result u32)
    (canon lift (core func $i "hello"))))
