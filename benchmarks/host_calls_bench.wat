;; Host-call microbenchmark guest: loops over one ABI import so the host's cost per call can be
;; measured against an empty loop. It must never do anything but the calls under test.
;;
;; get_loop (view): request = count u32 LE ‖ mode u32 LE. Repeats `count` times:
;;   mode 0: nothing (the baseline loop), 1: __get_len(key), 2: __get_len(key) then __get(key).
;;   The key is "bench/key" (a data segment, length prefix at ptr-4). Answers empty.
;; _start (block): payload = mode u32 LE ‖ message (a KeyValueFlush). Mode 1 passes the message
;;   to one __flush; mode 0 flushes an empty list instead, so both modes load the same input.
(module
  (import "env" "__host_len" (func $host_len (result i32)))
  (import "env" "__load_input" (func $load_input (param i32)))
  (import "env" "__get_len" (func $get_len (param i32) (result i32)))
  (import "env" "__get" (func $get (param i32 i32)))
  (import "env" "__flush" (func $flush (param i32)))
  ;; 256 pages (16 MiB): room for flush messages of 100,000 pairs.
  (memory (export "memory") 256)
  ;; 16: length 9, then "bench/key" at 20. 64: an empty answer (length 0 at 64, data at 68).
  (data (i32.const 16) "\09\00\00\00bench/key")
  ;; Input lands at 1024; values read by __get at 4096 (length at 4092 is the host's to check).
  (func (export "get_loop") (result i32)
    (local $count i32) (local $mode i32) (local $len i32)
    (call $load_input (i32.const 1024))
    (local.set $count (i32.load (i32.const 1028)))
    (local.set $mode (i32.load (i32.const 1032)))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $count)))
        (if (i32.ge_u (local.get $mode) (i32.const 1))
          (then
            (local.set $len (call $get_len (i32.const 20)))
            (if (i32.eq (local.get $mode) (i32.const 2))
              (then
                (i32.store (i32.const 4092) (local.get $len))
                (call $get (i32.const 20) (i32.const 4096))))))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (br $next)))
    (i32.const 68))
  (func (export "_start")
    (local $len i32)
    (local.set $len (call $host_len))
    (call $load_input (i32.const 1024))
    ;; Bytes 1024..1028 hold the height, 1028..1032 the mode, the message starts at 1032: its
    ;; length prefix goes where the mode was.
    (if (i32.eq (i32.load (i32.const 1028)) (i32.const 1))
      (then (i32.store (i32.const 1028) (i32.sub (local.get $len) (i32.const 8))))
      (else (i32.store (i32.const 1028) (i32.const 0))))
    (call $flush (i32.const 1032))))
