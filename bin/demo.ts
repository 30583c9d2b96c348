/**
 * What `ubiq demo` runs beside the pipeline (#23: a demo that shows everything): a car, a wearable
 * and a home for each policy, so that every card, chart and alert has data within a minute, and
 * the cars on the simulated city's roads with that city's road map, so that speeding is judged as
 * with a real map.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cityGeoJson, fleetCars, fleetLiving, makeCity, makeFleet, runSimulation, type City, type SimulationRun } from '../edge-sim/index.ts'
import { deviceRegistry } from '../ingest/index.ts'

/** How many days back the wearables and homes start: health and home are scored per closed day. */
const LIVING_DAYS = 2
const DAY_MS = 86_400_000

/** The road map of `city`, as `ubiq sim map` writes it, in `dataDir`; its path. */
function writeRoadMap(city: City, dataDir: string): string {
  const file = join(dataDir, 'demo-road-map.geojson')
  mkdirSync(dataDir, { recursive: true })
  writeFileSync(file, `${JSON.stringify(cityGeoJson(city))}\n`)
  return file
}

/**
 * The demo's `vehicles` policies for `seed`, its device registry, and the road map scoring reads
 * (`roadMap` when the operator gave one, ROAD_MAP; else the city's, written in `dataDir`).
 */
export function demoFleet(opts: { vehicles: number; seed: number; dataDir: string; roadMap?: string }, now = Date.now()) {
  const fleet = makeFleet(opts.vehicles, opts.seed)
  const city = makeCity({ seed: opts.seed })
  // The cars start an hour back and catch up at the run's speedup, then drive live: scores move
  // within seconds instead of after an hour of real driving.
  const carsStart = now - 3600_000
  const cars = fleetCars(fleet, city, carsStart)
  // Wearables and homes start two days back and catch up in about a minute, so the Health and Home
  // cards have scores as soon as the cars' do.
  const livingStart = now - LIVING_DAYS * DAY_MS
  const living = fleetLiving(fleet, opts.seed, livingStart, LIVING_DAYS + 30)
  return {
    fleet,
    registry: deviceRegistry([...cars.registry, ...living.registry]),
    roadMapFile: opts.roadMap ?? writeRoadMap(city, opts.dataDir),
    /** Starts every device on the broker at `mqttUrl` (as itself with `passwords`); stopped together. */
    async run(mqttUrl: string, speedup: number, passwords?: ReadonlyMap<string, string>): Promise<Pick<SimulationRun, 'stop'>> {
      const as = passwords ? { passwords } : {}
      const runs = [
        await runSimulation({ mqttUrl, devices: cars.devices, startTs: carsStart, speedup, ...as }),
        await runSimulation({ mqttUrl, devices: living.devices, startTs: livingStart, speedup: (LIVING_DAYS * DAY_MS) / 1000 / 60, ...as }),
      ]
      return { stop: async () => void (await Promise.all(runs.map((r) => r.stop()))) }
    },
  }
}
