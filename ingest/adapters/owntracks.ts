import { asObject, type Adapter } from './adapter.ts'

/**
 * OwnTracks (owntracks.org) phone apps publish location JSON to `owntracks/{user}/{device}`, where
 * `{user}` is the app's MQTT user: the ubiq device id. A location becomes a `gps` message; its
 * `tst` (epoch seconds, one fix per second at most) serves as the counter, as OwnTracks sends none.
 */
export function owntracks(): Adapter {
  return {
    name: 'owntracks',
    description: 'OwnTracks location JSON on `owntracks/{deviceId}/{phone}` (the app\'s MQTT user is the device id) becomes a `gps` message: lat, lon, acc, vel, cog, alt → lat_deg, lon_deg, accuracy_m, speed_kmh, heading_deg, alt_m; tst (s) is both seq and ts. Other `_type`s are rejected',
    filter: 'owntracks/+/+',
    acl: 'pattern write owntracks/%u/+',
    payload: 'json',
    claims: (topic) => topic.startsWith('owntracks/'),
    deviceId(topic) {
      const [, user, device, ...rest] = topic.split('/')
      return user && device && rest.length === 0 ? user : undefined
    },
    adapt(_topic, _deviceId, body) {
      const m = asObject(body)
      if (typeof m === 'string') return m
      if (m._type !== 'location') return `_type "${String(m._type).slice(0, 20)}" is not a location`
      if (typeof m.tst !== 'number') return 'location without tst'
      const optional = (name: string, value: unknown) => (value === undefined ? {} : { [name]: value })
      return {
        kind: 'gps',
        body: {
          seq: m.tst,
          ts: m.tst * 1000,
          lat_deg: m.lat,
          lon_deg: m.lon,
          accuracy_m: m.acc,
          ...optional('speed_kmh', m.vel),
          ...optional('heading_deg', m.cog),
          ...optional('alt_m', m.alt),
        },
      }
    },
  }
}
