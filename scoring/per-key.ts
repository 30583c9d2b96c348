/**
 * The one way scoring keeps state per device or per policy: a machine per key, built when the key
 * first appears (possibly from InfluxDB, asynchronously), fed the key's values in order, ended when
 * the key goes idle or the stream ends.
 */
import { Observable, asyncScheduler, debounceTime, from, groupBy, mergeMap, type ObservableInput, type OperatorFunction, type SchedulerLike } from 'rxjs'

export interface KeyedMachine<T, M, R> {
  key(x: T): string
  /** The machine for a key, from its first value; may be asynchronous (an InfluxDB read). */
  create(first: T): ObservableInput<M>
  push(machine: M, x: T): Iterable<R>
  /** The machine's last outputs when its key has been idle for `idleMs`, or the stream ends. */
  end(machine: M): Iterable<R>
  idleMs: number
  scheduler?: SchedulerLike
}

/**
 * Stage: values of many keys → the outputs of one machine per key. Values that come while a key's
 * machine is being built wait in a queue and then go through in order. (A queue of our own, not
 * `concatMap` on the machine: a backlog of thousands of synchronous inner observables, as a
 * restart's burst makes, recurses once per value and overflows the stack.) A machine built
 * synchronously emits in the frame of the value that caused the output.
 */
export function perKey<T, M, R>(m: KeyedMachine<T, M, R>): OperatorFunction<T, R> {
  return (source$) => source$.pipe(
    groupBy(m.key, { duration: (g) => g.pipe(debounceTime(m.idleMs, m.scheduler ?? asyncScheduler)) }),
    mergeMap((group$) => new Observable<R>((out) => {
      let machine: M | undefined
      let waiting: T[] | undefined // values that came before the machine was built
      let ended = false
      const emit = (rs: Iterable<R>) => {
        for (const r of rs) out.next(r)
      }
      const finish = () => {
        if (machine !== undefined) emit(m.end(machine))
        out.complete()
      }
      const sub = group$.subscribe({
        next(x) {
          if (machine !== undefined) return emit(m.push(machine, x))
          if (waiting) return void waiting.push(x)
          waiting = [x]
          from(m.create(x)).subscribe({
            next: (built) => (machine = built),
            error: (err) => out.error(err),
            complete() {
              const queued = waiting!
              waiting = undefined
              for (const q of queued) emit(m.push(machine!, q))
              if (ended) finish()
            },
          })
        },
        error: (err) => out.error(err),
        complete() {
          ended = true
          if (!waiting) finish()
        },
      })
      return () => sub.unsubscribe()
    })),
  )
}
