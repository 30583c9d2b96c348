/** edge-sim: simulated devices that speak the device contract, with their ground truth. */
export { makeFleet, fleetCars, fleetLiving, fleetRegistry, runFleet, type SimVehicle, type FleetOptions } from './fleet.ts'
export { driveObd, personas, type Persona, type PersonaName, type ObdSample } from './vehicle.ts'
export { seededRandom, type Random } from './random.ts'
export { readRecording, imuMessages, runReplay, replayStarts, type Recording, type LabelledEvent, type ReplayOptions } from './replay.ts'

// The simulation model (issue #4): pure, deterministic generators of device messages and their ground truth.
export { makeCity, route, routeLength_m, toLatLon, fromLatLon, distanceToRoad_m, nodeAt, roadBetween, speedLimits_kmh, cityGeoJson, type City, type CityOptions, type Road, type RoadClass, type RoadsGeoJson } from './roads.ts'
export { choosePlaces, planDay, planTrips, plannedKm, type Places, type PlaceName, type TripPlan } from './trips.ts'
export { driveVehicle, driveTrips, type Vehicle, type DriveOptions, type PhoneMount, type TripTruth, type HarshEvent } from './driving.ts'
export { liveHealth, type Wearer, type HealthOptions } from './health.ts'
export { liveHome, obeyCommand, pipeTemp_c, type Household, type HomeOptions, type HomeEvent } from './home.ts'
export {
  drivingPersonas, healthPersonas, homePersonas, claimBase, harshThresholds,
  type DrivingPersona, type DrivingPersonaName, type HealthPersona, type HealthPersonaName, type HomePersona, type HomePersonaName, type Schedule,
} from './personas.ts'
export { injectFaults, emptyFaultReport, type FaultConfig, type FaultReport, type FaultName } from './faults.ts'
export {
  toMessages, makePolicies, policyRegistry, policyDevices, registryEntry, deviceKinds,
  type SensorReading, type DeviceMessage, type DeviceType, type SimPolicy, type PolicyOptions, type StreamOptions, type SimDevice,
} from './device-streams.ts'
export { expectedClaims, drawClaims, groundTruth, groundTruthCsv, groundTruthJson, type SubjectTruth, type GroundTruth, type TermOptions } from './claims.ts'
export { runSimulation, type SimulationOptions, type SimulationRun } from './simulate.ts'
export * from './recordings/index.ts'
