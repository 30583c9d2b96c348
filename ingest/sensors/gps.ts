import { Type } from '@sinclair/typebox'
import { payloadSchema, type SensorKind } from '../contract.ts'

/**
 * Vehicle or phone GNSS fix, 1 Hz. Position is the most sensitive thing ubiq stores: it is never
 * logged, and features use it only for distance, road type and speed limits.
 */
const schema = payloadSchema({
  lat_deg: Type.Number({ minimum: -90, maximum: 90, description: 'Vehicle.CurrentLocation.Latitude, WGS84 degrees' }),
  lon_deg: Type.Number({ minimum: -180, maximum: 180, description: 'Vehicle.CurrentLocation.Longitude, WGS84 degrees' }),
  accuracy_m: Type.Number({ minimum: 0, maximum: 10_000, description: 'Vehicle.CurrentLocation.HorizontalAccuracy, metres (1 sigma)' }),
  speed_kmh: Type.Optional(Type.Number({ minimum: 0, maximum: 400, description: 'Ground speed from the receiver, km/h' })),
  heading_deg: Type.Optional(Type.Number({ minimum: 0, maximum: 360, description: 'Vehicle.CurrentLocation.Heading, degrees clockwise from true north' })),
  alt_m: Type.Optional(Type.Number({ minimum: -500, maximum: 9000, description: 'Vehicle.CurrentLocation.Altitude, metres above the WGS84 ellipsoid' })),
})

export const gps: SensorKind<typeof schema> = {
  kind: 'gps',
  units: { lat_deg: 'deg', lon_deg: 'deg', accuracy_m: 'm', speed_kmh: 'kmh', heading_deg: 'deg', alt_m: 'm' },
  subject: 'driving',
  description: 'Vehicle or phone GNSS fix, one message per second',
  schema,
  storage: {
    retention: 'raw_positions',
    why: 'speed without a dongle, distance across dropouts, speeding against the road map, night by the sun, and the trip\'s coarse cells; its positions are kept only as long as raw_positions',
    positions: ['lat_deg', 'lon_deg', 'alt_m'],
  },
  example: { seq: 44, ts: 1767225600000, lat_deg: 52.3731, lon_deg: 4.8922, accuracy_m: 4.5, speed_kmh: 48.2, heading_deg: 87.5 },
}
