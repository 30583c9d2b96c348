/** edge-sim: simulated devices that speak the device contract, with their ground truth. */
export { makeFleet, fleetRegistry, runFleet, type SimVehicle, type FleetOptions, type FleetRun } from './fleet.ts'
export { driveObd, personas, type Persona, type PersonaName, type ObdSample } from './vehicle.ts'
export { seededRandom, type Random } from './random.ts'
export { readRecording, imuMessages, runReplay, replayStarts, type Recording, type LabelledEvent, type ReplayOptions } from './replay.ts'
