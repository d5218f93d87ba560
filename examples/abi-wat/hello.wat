;; A guest written by hand against the rich ABI (docs/abi.md), without any SDK: the smallest
;; module that a node treats as an SDK module. The node loads it as WAT text.
;;
;; Rich exports (called with values):
;;   hello()    -> "hello"              a fixed, pre-encoded result
;;   greet(..)  -> "hello"              the same fixed result; ignores its arguments
;;   args(..)   -> [..the arguments..]  the argument buffer, returned as a list
;;   fail()     -> error (failed) "nope"
;; Numeric export (called with numbers, no ABI):
;;   add(i32, i32) -> i32
(module
  (memory (export "memory") 1)

  ;; Pre-encoded results (see "Encoding" in docs/abi.md):
  ;; Ok(Value::String("hello")): Ok=0, String tag 5, length 5, the bytes.
  (data (i32.const 16) "\00\05\05hello")
  ;; Err(Error { kind: 0 (failed), message: "nope", causes: [], trace: None, remote: false }):
  ;; Err=1, kind 0, length 4, "nope", 0 causes, None=0, false=0.
  (data (i32.const 32) "\01\00\04nope\00\00\00")

  ;; Bump allocator: the next free byte; memory is never reused (a demo, not a pattern).
  (global $next (mut i32) (i32.const 1024))

  (func $alloc (export "rwc_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local $end i32)
    (local.set $p (global.get $next))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    ;; Wrapped around the 4 GiB address space: trap.
    (if (i32.lt_u (local.get $end) (local.get $p)) (then unreachable))
    ;; Grow memory to cover [p, end).
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq
              (memory.grow
                (i32.sub
                  (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                  (memory.size)))
              (i32.const -1))
          (then unreachable))))
    (global.set $next (local.get $end))
    (local.get $p))

  ;; Buffers are never freed.
  (func (export "rwc_dealloc") (param $ptr i32) (param $len i32))

  ;; (ptr << 32) | len
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))

  (func (export "rwc_export_hello") (param $ptr i32) (param $len i32) (result i64)
    (call $pack (i32.const 16) (i32.const 8)))

  (func (export "rwc_export_greet") (param $ptr i32) (param $len i32) (result i64)
    (call $pack (i32.const 16) (i32.const 8)))

  ;; The arguments arrive as an encoded Vec<Value>: a count, then the values. Ok(List(args))
  ;; is the same bytes behind Ok=0 and the List tag 7.
  (func (export "rwc_export_args") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32)
    (local.set $out (call $alloc (i32.add (local.get $len) (i32.const 2))))
    (i32.store8 (local.get $out) (i32.const 0))
    (i32.store8 (i32.add (local.get $out) (i32.const 1)) (i32.const 7))
    (memory.copy
      (i32.add (local.get $out) (i32.const 2))
      (local.get $ptr)
      (local.get $len))
    (call $pack (local.get $out) (i32.add (local.get $len) (i32.const 2))))

  (func (export "rwc_export_fail") (param $ptr i32) (param $len i32) (result i64)
    (call $pack (i32.const 32) (i32.const 10)))

  (func (export "add") (param $a i32) (param $b i32) (result i32)
    (i32.add (local.get $a) (local.get $b)))
)
