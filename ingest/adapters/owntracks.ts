import type { Adapter } from './adapter.ts'

/**
 * OwnTracks (owntracks.org) phone apps publish location JSON to `owntracks/{user}/{device}`.
 * A location becomes a `gps` message of device `{user}-{device}`; its `tst` (epoch seconds, one
 * fix per second at most) serves as the message counter, as OwnTracks sends none.
 */
export const owntracks: Adapter = {
  name: 'owntracks',
  description: 'OwnTracks location JSON on `owntracks/{user}/{device}` becomes a `gps` message of device `{user}-{device}`: lat, lon, acc, vel, cog, alt → lat_deg, lon_deg, accuracy_m, speed_kmh, heading_deg, alt_m; tst (s) is both seq and ts. Other `_type`s are rejected',
  filter: 'owntracks/+/+',
  claims: (topic) => topic.startsWith('owntracks/'),
  deviceId(topic) {
    const [, user, device, ...rest] = topic.split('/')
    return user && device && rest.length === 0 ? `${user}-${device}` : undefined
  },
  adapt(body) {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return 'expected a JSON object'
    const m = body as Record<string, unknown>
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
