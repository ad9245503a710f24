/* The wake-up protocol of the rings (src/process/wakeup.hpp), modelled with store buffers.
 *
 * A waiter (a worker that waits for ring space) announces itself, then reads the condition; the notifier (the
 * caller that has freed space) writes the condition, then reads the announcement. Each store first goes to its
 * thread's store buffer and reaches memory later, as on machines that reorder a store with a later load (x86's
 * store buffer, AArch64): that is what C++ allows when the load is only acquire. Without a fence between each
 * side's store and load, both may read the old values: the notifier sees no waiter and wakes nobody, the
 * waiter sees no space and sleeps for ever (spin reports an invalid end state). With the sequentially
 * consistent fences of wakeup.hpp (-DFENCE), no run loses the wake-up.
 */
bit cond = 0;      /* ring space freed (the caller's result_tail) */
bit waiters = 0;   /* a waiter announced itself */
byte seq = 0;      /* the event count's futex word */
bit asleep = 0;

bit waiter_store = 0;    /* the waiter's store of `waiters`, still in its store buffer */
bit notifier_store = 0;  /* the notifier's store of `cond`, still in its store buffer */

active proctype waiter() {
  byte seen;
  seen = seq;
  waiter_store = 1;
#ifdef FENCE
  waiter_store == 0;     /* the fence: the store is in memory before the load */
#endif
  if
  :: cond == 1 -> goto done
  :: else -> skip
  fi;
  atomic { if :: seq == seen -> asleep = 1 :: else -> skip fi };  /* futex_wait(seq, seen) */
  asleep == 0;           /* until a futex_wake */
done:
  skip
}

active proctype notifier() {
  notifier_store = 1;
#ifdef FENCE
  notifier_store == 0;
#endif
  if
  :: waiters == 1 -> atomic { seq++; asleep = 0 }   /* futex_wake */
  :: else -> skip
  fi
}

/* Memory takes the buffered stores whenever it likes. */
active proctype memory() {
end:
  do
  :: atomic { waiter_store == 1 -> waiters = 1; waiter_store = 0 }
  :: atomic { notifier_store == 1 -> cond = 1; notifier_store = 0 }
  od
}
