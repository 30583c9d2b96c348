import { normal, between } from '../random.ts'
import { toLatLon } from '../roads.ts'
import { locate } from '../route.ts'
import { r1, type VehicleSensor } from './vehicle.ts'

/** The 1 Hz `gps` fix, dongle or phone, with noise and dropouts: none in a tunnel, often none in an urban canyon. */
export const simulateGps: VehicleSensor = ({ city, route, noise }) => {
  let ex = 0, ey = 0
  const at = { x: 0, y: 0, heading: 0, curv: 0, leg: 0 }
  return {
    second({ ts, s, v }) {
      locate(route, s, at)
      if (route.tunnel[at.leg]) return []
      const canyon = Math.hypot(at.x, at.y) < city.canyonRadius_m
      if (noise() < (canyon ? 0.04 : 0.003)) return []
      // Position error wanders (multipath, satellites changing) rather than jumping: AR(1), σ per axis.
      const sigma = canyon ? 7 : 3
      ex = 0.9 * ex + 0.436 * sigma * normal(noise)
      ey = 0.9 * ey + 0.436 * sigma * normal(noise)
      const { lat_deg, lon_deg } = toLatLon(city, at.x + ex, at.y + ey)
      return [{
        kind: 'gps', ts,
        body: {
          lat_deg: Math.round(lat_deg * 1e6) / 1e6,
          lon_deg: Math.round(lon_deg * 1e6) / 1e6,
          accuracy_m: r1(sigma * between(noise, 0.8, 1.3)),
          speed_kmh: r1(Math.max(0, v * 3.6 + normal(noise, 0, 0.4))),
          ...(v > 1 ? { heading_deg: r1((((at.heading * 180) / Math.PI) % 360 + 360) % 360) } : {}),
        },
      }]
    },
  }
}
