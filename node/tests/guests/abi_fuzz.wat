;; A guest that lets a fuzzer drive the node's side of the guest ABI (docs/abi.md).
;;
;; The rich export `run` takes one argument, a byte buffer: a program. The guest interprets
;; it, one operation per byte, and so hands the node whatever pointers, lengths, handles and
;; encoded values the program says, through every entry point: `rwc.call`,
;; `rwc.take_result`, `rwc.capability`, `rwc.release`, `rwc.panic`, the packed buffers it
;; returns, what `rwc_alloc` answers and whether `rwc_dealloc` traps. Calls into the guest
;; that come later (a method of a guest object, from the top level or nested inside an
;; `rwc.call`) go on with the same program where it stopped. One compiled module serves
;; every input; a program that runs out ends with `Ok(())`.
;;
;; Operations (the byte modulo 21), with their operands read from the program after it
;; (u8, u16/u32/u64 little-endian; an operand past the end reads as 0; a handle operand
;; `h8` of 255 means the handle in the register, the last `rwc.capability` answer):
;;   0 ptr:u32 len:u32   return the packed buffer (ptr, len), whatever it is
;;   1 n:u16 bytes       return those n bytes (an encoded result, or not)
;;   2                   return Ok(())
;;   3 h8 n:u16 bytes    rwc.call(h, those bytes)
;;   4 h8 k:u8           rwc.call(h, canned request k % 11; see the data below)
;;   5 h:u64 ptr len     rwc.call(h, ptr, len), all raw
;;   6                   rwc.take_result into a fresh buffer of the last call's length
;;   7 ptr:u32 len:u32   rwc.take_result(ptr, len), raw
;;   8 n:u8 bytes        rwc.capability(those bytes) into the register
;;   9 k:u8              rwc.capability("sys" | "log" | "cb" | "nope") into the register
;;  10 h8                rwc.release(h)
;;  11 h:u64             rwc.release(h), raw
;;  12 ptr:u32 len:u32   rwc.panic(ptr, len), then go on
;;  13                   rwc.panic("guest panic"), then trap
;;  14                   trap
;;  15 mode:u8 v:u32     rwc_alloc from now on: 0 fresh memory, 1 returns v, 2 traps,
;;                       3 fresh memory + v
;;  16 n:u8              memory.grow(n)
;;  17 off:u32 n:u8 bytes   store those bytes at off (traps out of bounds)
;;  18                   return the buffer of the last rwc.take_result (op 6)
;;  19                   loop forever (until fuel or the deadline stops it)
;;  20 t:u8              rwc_dealloc traps from now on if t is odd
(module
  (import "rwc" "call" (func $call (param i64 i32 i32) (result i32)))
  (import "rwc" "take_result" (func $take (param i32 i32)))
  (import "rwc" "capability" (func $capability (param i32 i32) (result i64)))
  (import "rwc" "release" (func $release (param i64)))
  (import "rwc" "panic" (func $panic (param i32 i32)))

  ;; 0..4096: canned data; 4096..65536: the program; 65536..: the heap.
  (memory (export "memory") 2)

  ;; Ok(Value::Unit): Ok = 0, Unit = tag 0.
  (data (i32.const 0) "\00\00")
  ;; Lengths of the canned requests, one byte each, then the requests at 256 + 32 k. Each
  ;; is an encoded (method: String, args: Vec<Value>).
  (data (i32.const 240) "\06\09\09\08\0a\09\0d\09\06\09\09")
  (data (i32.const 256) "\04echo\00")                ;; 0 echo()
  (data (i32.const 288) "\04echo\01\09\01\00")       ;; 1 echo(node handle 0)
  (data (i32.const 320) "\04call\01\09\00\07")       ;; 2 call(guest object 7)
  (data (i32.const 352) "\06report\00")              ;; 3 report()
  (data (i32.const 384) "\04info\01\05\02hi")        ;; 4 info("hi")
  (data (i32.const 416) "\04disk\01\05\01/")         ;; 5 disk("/")
  (data (i32.const 448) "\0brwc.methods\00")         ;; 6 rwc.methods()
  (data (i32.const 480) "\04hold\01\09\00\09")       ;; 7 hold(guest object 9)
  (data (i32.const 512) "\04fail\00")                ;; 8 fail()
  (data (i32.const 544) "\04echo\01\09\01\01")       ;; 9 echo(node handle 1)
  (data (i32.const 576) "\04call\01\09\01\00")       ;; 10 call(node handle 0)
  ;; Capability names: lengths at 700, names at 704 + 4 k.
  (data (i32.const 700) "\03\03\02\04")
  (data (i32.const 704) "sys\00log\00cb\00\00nope")
  (data (i32.const 720) "guest panic")

  (global $pc (mut i32) (i32.const 0))
  (global $plen (mut i32) (i32.const 0))
  (global $heap (mut i32) (i32.const 65536))
  (global $copied (mut i32) (i32.const 0))
  (global $alloc_mode (mut i32) (i32.const 0))
  (global $alloc_value (mut i32) (i32.const 0))
  (global $dealloc_traps (mut i32) (i32.const 0))
  (global $last_len (mut i32) (i32.const 0))
  (global $last_buf (mut i32) (i32.const 0))
  (global $reg (mut i64) (i64.const 0))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))

  ;; `n` bytes of fresh memory, growing it as needed; traps when it cannot.
  (func $bump (param $n i32) (result i32)
    (local $p i32)
    (local $end i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (if (i32.lt_u (local.get $end) (local.get $p)) (then unreachable))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq
              (memory.grow
                (i32.sub
                  (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                  (memory.size)))
              (i32.const -1))
          (then unreachable))))
    (global.set $heap (local.get $end))
    (local.get $p))

  ;; The next program byte, or 0 past the end.
  (func $b (result i32)
    (local $v i32)
    (if (i32.ge_u (global.get $pc) (global.get $plen)) (then (return (i32.const 0))))
    (local.set $v (i32.load8_u (i32.add (i32.const 4096) (global.get $pc))))
    (global.set $pc (i32.add (global.get $pc) (i32.const 1)))
    (local.get $v))

  (func $u16 (result i32)
    (i32.or (call $b) (i32.shl (call $b) (i32.const 8))))

  (func $u32 (result i32)
    (i32.or (call $u16) (i32.shl (call $u16) (i32.const 16))))

  (func $u64 (result i64)
    (i64.or
      (i64.extend_i32_u (call $u32))
      (i64.shl (i64.extend_i32_u (call $u32)) (i64.const 32))))

  ;; A handle operand: 255 is the register.
  (func $handle (result i64)
    (local $h i32)
    (local.set $h (call $b))
    (if (result i64) (i32.eq (local.get $h) (i32.const 255))
      (then (global.get $reg))
      (else (i64.extend_i32_u (local.get $h)))))

  ;; The next `n` program bytes (fewer at the end) copied to fresh memory; their count is
  ;; left in $copied.
  (func $prog_buf (param $n i32) (result i32)
    (local $rest i32)
    (local $p i32)
    (local.set $rest (i32.sub (global.get $plen) (global.get $pc)))
    (if (i32.gt_u (local.get $n) (local.get $rest)) (then (local.set $n (local.get $rest))))
    (local.set $p (call $bump (local.get $n)))
    (memory.copy
      (local.get $p)
      (i32.add (i32.const 4096) (global.get $pc))
      (local.get $n))
    (global.set $pc (i32.add (global.get $pc) (local.get $n)))
    (global.set $copied (local.get $n))
    (local.get $p))

  (func (export "rwc_alloc") (param $len i32) (result i32)
    (block $fresh
      (block $value
        (block $trap
          (block $offset
            (br_table $fresh $value $trap $offset (global.get $alloc_mode)))
          (return (i32.add (call $bump (local.get $len)) (global.get $alloc_value))))
        unreachable)
      (return (global.get $alloc_value)))
    (call $bump (local.get $len)))

  (func (export "rwc_dealloc") (param $ptr i32) (param $len i32)
    (if (global.get $dealloc_traps) (then unreachable)))

  ;; The arguments: an encoded Vec<Value> holding one Value::Bytes, the program. Anything
  ;; else is an empty program.
  (func (export "rwc_export_run") (param $ptr i32) (param $len i32) (result i64)
    (local $marker i32)
    (local $head i32)
    (local $n i32)
    (global.set $pc (i32.const 0))
    (global.set $plen (i32.const 0))
    (if (i32.and
          (i32.ge_u (local.get $len) (i32.const 3))
          (i32.and
            (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 1))
            (i32.eq (i32.load8_u (i32.add (local.get $ptr) (i32.const 1))) (i32.const 6))))
      (then
        (local.set $marker (i32.load8_u (i32.add (local.get $ptr) (i32.const 2))))
        (if (i32.lt_u (local.get $marker) (i32.const 251))
          (then (local.set $n (local.get $marker)) (local.set $head (i32.const 3)))
          (else
            (if (i32.eq (local.get $marker) (i32.const 251))
              (then
                (local.set $n (i32.load16_u (i32.add (local.get $ptr) (i32.const 3))))
                (local.set $head (i32.const 5)))
              (else
                (local.set $n (i32.load (i32.add (local.get $ptr) (i32.const 3))))
                (local.set $head (i32.const 7))))))
        ;; No more than the buffer holds, nor than the program area.
        (if (i32.gt_u (local.get $n) (i32.sub (local.get $len) (local.get $head)))
          (then (local.set $n (i32.sub (local.get $len) (local.get $head)))))
        (if (i32.gt_u (local.get $n) (i32.const 61440))
          (then (local.set $n (i32.const 61440))))
        (memory.copy
          (i32.const 4096)
          (i32.add (local.get $ptr) (local.get $head))
          (local.get $n))
        (global.set $plen (local.get $n))))
    (call $interp))

  (func (export "rwc_object_call") (param $ptr i32) (param $len i32) (result i64)
    (call $interp))

  (func (export "rwc_object_drop") (param $id i64))

  (func $interp (result i64)
    (local $a i32)
    (local $n i32)
    (local $i i32)
    block $done
      loop $next
        (br_if $done (i32.ge_u (global.get $pc) (global.get $plen)))
        block $o20
        block $o19
        block $o18
        block $o17
        block $o16
        block $o15
        block $o14
        block $o13
        block $o12
        block $o11
        block $o10
        block $o9
        block $o8
        block $o7
        block $o6
        block $o5
        block $o4
        block $o3
        block $o2
        block $o1
        block $o0
          (i32.rem_u (call $b) (i32.const 21))
          br_table $o0 $o1 $o2 $o3 $o4 $o5 $o6 $o7 $o8 $o9 $o10
                   $o11 $o12 $o13 $o14 $o15 $o16 $o17 $o18 $o19 $o20
        end
        ;; 0: return (ptr, len) as they are
        (return (call $pack (call $u32) (call $u32)))
        end
        ;; 1: return n program bytes
        (local.set $a (call $prog_buf (call $u16)))
        (return (call $pack (local.get $a) (global.get $copied)))
        end
        ;; 2: return Ok(())
        (return (call $pack (i32.const 0) (i32.const 2)))
        end
        ;; 3: rwc.call with n program bytes
        (global.set $last_len
          (call $call (call $handle) (call $prog_buf (call $u16)) (global.get $copied)))
        (br $next)
        end
        ;; 4: rwc.call with a canned request
        (global.set $last_len
          (call $call
            (call $handle)
            (i32.add
              (i32.const 256)
              (i32.mul (local.tee $a (i32.rem_u (call $b) (i32.const 11))) (i32.const 32)))
            (i32.load8_u (i32.add (i32.const 240) (local.get $a)))))
        (br $next)
        end
        ;; 5: rwc.call, raw
        (global.set $last_len (call $call (call $u64) (call $u32) (call $u32)))
        (br $next)
        end
        ;; 6: rwc.take_result into a buffer of the right size
        (local.set $a (call $bump (global.get $last_len)))
        (call $take (local.get $a) (global.get $last_len))
        (global.set $last_buf (local.get $a))
        (br $next)
        end
        ;; 7: rwc.take_result, raw
        (call $take (call $u32) (call $u32))
        (br $next)
        end
        ;; 8: rwc.capability with n program bytes
        (global.set $reg
          (call $capability (call $prog_buf (call $b)) (global.get $copied)))
        (br $next)
        end
        ;; 9: rwc.capability with a canned name
        (local.set $a (i32.rem_u (call $b) (i32.const 4)))
        (global.set $reg
          (call $capability
            (i32.add (i32.const 704) (i32.mul (local.get $a) (i32.const 4)))
            (i32.load8_u (i32.add (i32.const 700) (local.get $a)))))
        (br $next)
        end
        ;; 10: rwc.release
        (call $release (call $handle))
        (br $next)
        end
        ;; 11: rwc.release, raw
        (call $release (call $u64))
        (br $next)
        end
        ;; 12: rwc.panic, raw, and go on
        (call $panic (call $u32) (call $u32))
        (br $next)
        end
        ;; 13: a panic as a guest SDK reports it
        (call $panic (i32.const 720) (i32.const 11))
        unreachable
        end
        ;; 14: trap
        unreachable
        end
        ;; 15: how rwc_alloc answers from now on
        (global.set $alloc_mode (i32.rem_u (call $b) (i32.const 4)))
        (global.set $alloc_value (call $u32))
        (br $next)
        end
        ;; 16: grow memory
        (drop (memory.grow (call $b)))
        (br $next)
        end
        ;; 17: store n program bytes at off
        (local.set $a (call $u32))
        (local.set $n (call $b))
        (local.set $i (i32.const 0))
        (block $stored
          (loop $store
            (br_if $stored (i32.ge_u (local.get $i) (local.get $n)))
            (i32.store8 (i32.add (local.get $a) (local.get $i)) (call $b))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $store)))
        (br $next)
        end
        ;; 18: return what the last rwc.take_result got
        (return (call $pack (global.get $last_buf) (global.get $last_len)))
        end
        ;; 19: loop forever
        (loop $forever (br $forever))
        unreachable
        end
        ;; 20: whether rwc_dealloc traps
        (global.set $dealloc_traps (i32.and (call $b) (i32.const 1)))
        (br $next)
      end
    end
    (call $pack (i32.const 0) (i32.const 2)))
)
