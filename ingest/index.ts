/** ingest: the device contract, and the service that validates and stores device messages. */
export { topics, envelope, payloadSchema, isId, ID_PATTERN, type Reading, type Subject, type SensorKind } from './contract.ts'
export { sensors, sensorsByKind } from './sensors/index.ts'
export { deviceRegistry, parseDeviceRegistry, type DeviceEntry, type DeviceRegistry } from './registry.ts'
export { decodeMessage, isRejection, type Rejection, type RejectReason, type DecodeConfig } from './decode.ts'
export { connectInflux, toLine, quoteIdent, quoteString, type Influx, type InfluxConfig, type InfluxHooks, type Series } from './influx.ts'
export { openJournal, type Journal } from './journal.ts'
export { startIngest, dropDuplicates, storeReadings, type Ingest, type IngestDeps } from './ingest.ts'
export { brokerAcl, newCredentials, writeBrokerAuth, SERVICE_USER, type BrokerCredentials } from './broker.ts'
