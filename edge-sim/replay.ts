/**
 * Replay of real recordings: a phone IMU trip from the driver behaviour dataset
 * (../shared/data/driver-behavior-dataset, see its README) as the contract's batched `imu` stream,
 * with the dataset's hand-labelled manoeuvres as ground truth.
 *
 * The phone sampled at an irregular ~50 Hz, each sensor on its own clock; the contract's batch has
 * a fixed rate, so both sensors are resampled onto one grid by linear interpolation.
 */
import { readFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { topics } from '../ingest/device-contract.ts'
import type { DeviceMessage } from './device-streams.ts'
import { runSimulation, type SimulationRun } from './simulate.ts'

/** A labelled manoeuvre, in seconds since the trip's start. */
export interface LabelledEvent {
  /** The dataset's label, e.g. `freada_agressiva` (aggressive braking). */
  label: string
  startS: number
  endS: number
}

export interface Recording {
  name: string
  rateHz: number
  /** Rows of ax, ay, az (linear, or with gravity when read so, m/s²) and gx, gy, gz (rad/s), earth frame, at `rateHz` from second 0. */
  samples: number[][]
  events: LabelledEvent[]
}

/** One sensor file: uptime (ns) and x, y, z per row. */
function readSensor(file: string): { t: number[]; xyz: number[][] } {
  const lines = readFileSync(file, 'utf8').trim().split('\n').slice(1)
  const t: number[] = []
  const xyz: number[][] = []
  for (const [i, line] of lines.entries()) {
    const cols = line.split(',')
    const row = cols.slice(1, 5).map(Number)
    if (cols.length !== 5 || row.some((v) => !Number.isFinite(v))) throw new Error(`${file}:${i + 2}: expected timestamp,uptimeNanos,x,y,z`)
    t.push(row[0]!)
    xyz.push(row.slice(1))
  }
  return { t, xyz }
}

/** x, y, z of a sensor at uptime `at` (ns), interpolated (held at the ends); k only moves forward. */
function interpolator(s: { t: number[]; xyz: number[][] }) {
  let k = 0
  return (at: number): number[] => {
    while (k < s.t.length - 2 && s.t[k + 1]! < at) k++
    const [t0, t1] = [s.t[k]!, s.t[k + 1]!]
    const w = Math.min(1, Math.max(0, (at - t0) / (t1 - t0)))
    return s.xyz[k]!.map((v, j) => v + (s.xyz[k + 1]![j]! - v) * w)
  }
}

/** Reads a trip folder of the dataset, resampled to `rateHz`; the raw acceleration (gravity included, +9.81 up) `withGravity`. */
export function readRecording(dir: string, rateHz = 50, withGravity = false): Recording {
  const meta = JSON.parse(readFileSync(join(dir, 'viagem.json'), 'utf8')) as { firstCollectionUptimeNanos: number; lastCollectionUptimeNanos: number }
  const accel = readSensor(join(dir, withGravity ? 'acelerometro_terra.csv' : 'aceleracaoLinear_terra.csv'))
  const gyro = readSensor(join(dir, 'giroscopio_terra.csv'))
  const start = meta.firstCollectionUptimeNanos
  const to = Math.min(meta.lastCollectionUptimeNanos, accel.t.at(-1)!, gyro.t.at(-1)!)
  const a = interpolator(accel)
  const g = interpolator(gyro)
  const samples: number[][] = []
  // The grid starts at the trip's second 0, so row i is at i / rateHz s, as the labels count; a
  // sensor's first value holds for the few ms before its first sample.
  for (let i = 0, at = start; at <= to; i++, at = start + (i * 1e9) / rateHz) {
    samples.push([...a(at), ...g(at)].map((v) => Math.round(v * 1e6) / 1e6))
  }
  const events = readFileSync(join(dir, 'groundTruth.csv'), 'utf8').trim().split('\n').slice(1).map((line) => {
    const [label, startS, endS] = line.split(',').map((c) => c.trim())
    return { label: label!, startS: Number(startS), endS: Number(endS) }
  })
  return { name: basename(dir), rateHz, samples, events }
}

/**
 * The recording as `imu` message bodies, one per second of samples, device time from `startTs`;
 * `seq` counts from `firstSeq`.
 */
export function* imuMessages(rec: Recording, startTs: number, firstSeq = 0): Generator<{ seq: number; ts: number; rate_hz: number; samples: number[][] }> {
  for (let i = 0, seq = firstSeq; i < rec.samples.length; i += rec.rateHz, seq++) {
    yield { seq, ts: startTs + Math.round((i * 1000) / rec.rateHz), rate_hz: rec.rateHz, samples: rec.samples.slice(i, i + rec.rateHz) }
  }
}

export interface ReplayOptions {
  mqttUrl: string
  /** The phone-IMU device that replays (registry: kinds ['imu']). */
  deviceId: string
  recordings: readonly Recording[]
  /** Device time of the first recording's second 0; the next starts a minute after one ends. */
  startTs: number
  /** Simulated seconds per real second (1: real time); Infinity sends as fast as acknowledged. */
  speedup: number
  /** MQTT password, for a broker with per-device credentials (username = device id). */
  password?: string
  /** The first message's seq (default 0); a later replay by the same device must start above the last. */
  firstSeq?: number
}

/** Where each recording's second 0 falls in device time, for comparing detections with the labels. */
export const replayStarts = (recordings: readonly Recording[], startTs: number): number[] => {
  let at = startTs
  return recordings.map((r) => {
    const start = at
    at += Math.ceil(r.samples.length / r.rateHz) * 1000 + 60_000
    return start
  })
}

/** Publishes the recordings as one phone's `imu` stream, paced like a live device. */
export function runReplay(opts: ReplayOptions): Promise<SimulationRun> {
  const topic = topics.device(opts.deviceId, 'imu')
  const starts = replayStarts(opts.recordings, opts.startTs)
  function* messages(): Generator<DeviceMessage> {
    let seq = opts.firstSeq ?? 0
    for (const [i, rec] of opts.recordings.entries()) {
      for (const body of imuMessages(rec, starts[i]!, seq)) {
        seq = body.seq + 1
        yield { deviceId: opts.deviceId, kind: 'imu', topic, payload: JSON.stringify(body), seq: body.seq, ts: body.ts, sendAt: body.ts }
      }
    }
  }
  return runSimulation({
    mqttUrl: opts.mqttUrl,
    devices: [{ deviceId: opts.deviceId, messages: messages() }],
    startTs: opts.startTs,
    speedup: opts.speedup,
    ...(opts.password === undefined ? {} : { passwords: new Map([[opts.deviceId, opts.password]]) }),
  })
}
