/** The parts of web-push and its http_ece (which ship no types) that ubiq and its tests use. */
declare module 'web-push' {
  interface PushSubscription { endpoint: string; keys: { p256dh: string; auth: string } }
  interface RequestDetails { method: string; headers: Record<string, string>; body: Buffer | null; endpoint: string }
  interface Options { vapidDetails: { subject: string; publicKey: string; privateKey: string }; TTL?: number; urgency?: 'very-low' | 'low' | 'normal' | 'high'; topic?: string; contentEncoding?: 'aes128gcm' | 'aesgcm' }
  const webPush: {
    generateVAPIDKeys(): { publicKey: string; privateKey: string }
    generateRequestDetails(subscription: PushSubscription, payload: string | Buffer, options: Options): RequestDetails
  }
  export default webPush
}

/** web-push's own encryption library (RFC 8188/8291): push.test.ts decrypts with it as a phone would. */
declare module 'http_ece' {
  import type { ECDH } from 'node:crypto'
  const ece: { decrypt(body: Buffer, params: { version: 'aes128gcm'; privateKey: ECDH; authSecret: string }): Buffer }
  export default ece
}
