/**
 * How scoring keeps state per device or per policy: a machine per key, built when the key first
 * appears (possibly from InfluxDB, asynchronously), fed the key's values in order, ended when the
 * key goes idle or the stream ends. (`drivingScoreInputs` keeps its own groupBy: it retries a
 * failed history read with the policy's next trip, which a machine built once cannot.)
 */
import { EMPTY, Observable, Subscription, asyncScheduler, catchError, debounceTime, defer, filter, groupBy, merge, mergeMap, of, take, tap, type ObservableInput, type OperatorFunction, type SchedulerLike } from 'rxjs'
import type { Reading } from '../ingest/index.ts'

export interface KeyedMachine<T, M, R> {
  key(x: T): string
  /** The machine for a key, from its first value; may be asynchronous (an InfluxDB read). */
  create(first: T): ObservableInput<M>
  push(machine: M, x: T): Iterable<R>
  /** The machine's last outputs when its key has been idle for `idleMs`, or the stream ends. */
  end(machine: M): Iterable<R>
  idleMs: number
  scheduler?: SchedulerLike
  /**
   * Keys whose machines are dropped at once, without `end` (an erased policy's, #21 item 5: what
   * they hold must not be written back).
   */
  forget$?: Observable<string>
  /**
   * A key's machine failed (its create, push or end threw, or its build failed): the key's state is
   * dropped, its next value builds a new machine, and every other key runs on (#20: one device's
   * exception ended the whole stream, and the process with it). Without it, the failure is the
   * stream's error: for tests, which should see it; the service always gives one.
   */
  onError?(err: unknown, key: string): void
}

/**
 * Stage: values of many keys → the outputs of one machine per key. Values that come while a key's
 * machine is being built wait in a queue and then go through in order. (A queue of our own, not
 * `concatMap` on the machine: a backlog of thousands of synchronous inner observables, as a
 * restart's burst makes, recurses once per value and overflows the stack.) A machine built
 * synchronously emits in the frame of the value that caused the output. A machine that fails is
 * `onError`'s, and only its key's.
 */
export function perKey<T, M, R>(m: KeyedMachine<T, M, R>): OperatorFunction<T, R> {
  /** Keys being forgotten: their group ends without `end`. */
  const forgetting = new Set<string>()
  return (source$) => source$.pipe(
    groupBy(m.key, { duration: (g) => merge(g.pipe(debounceTime(m.idleMs, m.scheduler ?? asyncScheduler)), forgotten(m.forget$, g.key, forgetting)) }),
    mergeMap((group$) => new Observable<R>((out) => {
      let machine: M | undefined
      let waiting: T[] | undefined // values that came before the machine was built
      let building: Subscription | undefined
      let ended = false
      const fail = (err: unknown) => {
        if (!m.onError) return out.error(err)
        // Whatever the machine held may be what made it throw: it goes, values queued for it too.
        machine = undefined
        waiting = undefined
        building?.unsubscribe()
        m.onError(err, group$.key)
        if (ended) out.complete()
      }
      const run = (step: () => void) => {
        try {
          step()
        } catch (err) {
          fail(err)
        }
      }
      const emit = (rs: Iterable<R>) => {
        for (const r of rs) out.next(r)
      }
      const finish = () => run(() => {
        if (machine !== undefined) emit(m.end(machine))
        out.complete()
      })
      const sub = group$.subscribe({
        next(x) {
          if (machine !== undefined) return run(() => emit(m.push(machine!, x)))
          if (waiting) return void waiting.push(x)
          waiting = [x]
          let built = false
          // defer(): a create that throws, like a promise that rejects, comes out as an error below (from() would throw it into groupBy).
          building = defer(() => m.create(x)).pipe(take(1)).subscribe({
            next(b) {
              built = true
              machine = b
              const queued = waiting!
              waiting = undefined
              run(() => {
                for (const q of queued) emit(m.push(b, q))
              })
              if (ended) finish()
            },
            error: fail,
            complete: () => built || fail(new Error(`no machine was built for key ${group$.key}`)),
          })
        },
        error: (err) => out.error(err),
        complete() {
          if (forgetting.delete(group$.key)) {
            machine = undefined
            waiting = undefined
            building?.unsubscribe()
            return out.complete()
          }
          ended = true
          if (!waiting) finish()
        },
      })
      return () => {
        sub.unsubscribe()
        building?.unsubscribe()
      }
    })),
  )
}

/** A group's end when `forget$` names its key, marked in `forgetting` first (its group's end then knows why). */
export const forgotten = (forget$: Observable<string> | undefined, key: string, forgetting = new Set<string>()) =>
  (forget$ ?? EMPTY).pipe(filter((k) => k === key), take(1), tap((k) => forgetting.add(k)))

/** Where a machine's starting state comes from, asynchronously (InfluxDB), when its key first appears. */
export interface Restore<S> {
  read(first: Reading): Promise<S>
  /** The read failed: the machine starts from `empty` (and the key is named in the report). */
  onError(err: unknown, key: string): void
}

/** The state `restore` reads for `first`, or `empty` (synchronously, when there is nothing to read or the read failed). */
export const restored = <S>(restore: Restore<S> | undefined, first: Reading, key: string, empty: S): Observable<S> =>
  restore ? defer(() => restore.read(first)).pipe(catchError((err) => (restore.onError(err, key), of(empty)))) : of(empty)
