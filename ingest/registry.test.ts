import t from 'tap'
import { parseDeviceRegistry } from './index.ts'

t.test('the device registry file is validated, with the first problem named', async (t) => {
  const ok = parseDeviceRegistry('{"devices":[{"deviceId":"car-1","policyId":"pol-1","kinds":["obd"]}]}')
  t.same(ok.get('car-1'), { deviceId: 'car-1', policyId: 'pol-1', kinds: ['obd'] })
  t.throws(() => parseDeviceRegistry('{devices'), /device registry is not JSON/)
  t.equal(parseDeviceRegistry('{"devices":[{"deviceId":"c","policyId":"p","kinds":["obd"],"registeredAt":"2026-11-01T08:00:00Z"}]}').get('c')?.registeredAtMs,
    Date.UTC(2026, 10, 1, 8), 'registeredAt is parsed once')
  t.throws(() => parseDeviceRegistry('{"devices":[{"deviceId":"c","policyId":"p","kinds":["obd"],"registeredAt":"2026-13-45"}]}'),
    /device c: registeredAt "2026-13-45" is not an ISO 8601 time/)
  t.throws(() => parseDeviceRegistry('{"devices":[{"deviceId":"car/1","policyId":"p","kinds":["obd"]}]}'), /\/devices\/0\/deviceId/)
  t.throws(() => parseDeviceRegistry('{"devices":[{"deviceId":"c","policyId":"p","kinds":[]}]}'), /\/devices\/0\/kinds/)
  t.throws(() => parseDeviceRegistry('{"devices":[{"deviceId":"c","policyId":"p","kinds":["obd"]},{"deviceId":"c","policyId":"q","kinds":["obd"]}]}'),
    /device c is listed twice/)
  t.throws(() => parseDeviceRegistry('{"devices":[{"deviceId":"c","policyId":"p","kinds":["odb"]}]}'),
    /device c: no stream "odb" in contract v1 \(streams: obd/)
})
