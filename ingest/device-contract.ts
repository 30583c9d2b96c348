/**
 * ingest's device contract alone: topics, envelope, sensor kinds, the device registry, decoding
 * and the consent, privacy and command messages, their docs, and ubiq's error catalogue. What
 * devices, the simulator and the docs need, without the service: importing it loads neither the
 * MQTT nor the InfluxDB client (#22 item 6). ingest/index.ts gives it and the service.
 */
export { topics, envelope, payloadSchema, isId, ID_PATTERN, TIME_REUSE_WINDOW, Subject, subjects, subjectNames, subjectList, units, type Unit, type FieldUnits, type Reading, type SensorKind } from './contract.ts'
export { sensors, sensorsByKind } from './sensors/index.ts'
export { deviceRegistry, parseDeviceRegistry, type DeviceEntry, type DeviceRegistry, type RegisteredDevice } from './registry.ts'
export { decodeMessage, decodeConsent, decodePrivacy, decodeAck, isRejection, type Rejection, type RejectReason, type DecodeConfig, type ConsentMessage, type PrivacyMessage } from './decode.ts'
export { createAdapters, type Adapter } from './adapters/index.ts'
export { geohash, geohashCell, haversine_km, type LatLon } from './geo.ts'
export { consentStore, consentCategory, consentedFor, consentNotice, consentMessage, ConsentNote, ConsentRequest, CONSENT_STREAM, PURPOSES, type ConsentStore, type ConsentStoreOptions, type ConsentChange, RecordedChange, ConsentActor, type ConsentCategory, PolicyConsent, type Purpose, StreamConsent } from './consent.ts'
export { privacyStore, privacyNotice, privacyMessage, pauseStops, pauseWindow, PauseRequest, PAUSE_SCOPES, PRIVACY_STREAM, MAX_PAUSE_MS, MAX_LEAD_MS, PAST_TOLERANCE_MS, type PrivacyStore, type PrivacyStoreOptions, type PrivacyChange, type RecordedPrivacyChange, PrivacyActor, Pause, type PauseScope } from './privacy.ts'
export { contractDocs, type PublishedSchemas } from './contract-docs.ts'
export { dataInventory, DATA_INVENTORY } from './data-inventory.ts'
export { commandStore, commandPayload, commandMessages, commandMessage, ackMessage, COMMANDS, COMMAND_NAMES, ACK_STREAM, ACK_STATUSES, type Command, type CommandName, type CommandStore, type CommandStoreOptions, type CommandChange, type RecordedCommandChange, type AckStatus, type CommandMessage } from './commands.ts'
export { codes, errorsDoc, ERRORS_DOC, UbiqError, type ErrorClass, type ErrorCode, type RestAnswer } from './errors.ts'
