/**
 * The policyholder app's service worker (#23): the page's shell works offline, and alerts arrive
 * by web push while no page is open. Only the shell is cached: never a response of /api or /feed,
 * which hold personal data (and a token opens them); those always go to the network.
 */
const SHELL = 'ubiq-shell-v1'
const FILES = ['/', '/assets/words.js', '/manifest.webmanifest', '/icon.svg']

self.addEventListener('install', (e) => e.waitUntil(caches.open(SHELL).then((c) => c.addAll(FILES)).then(() => self.skipWaiting())))
self.addEventListener('activate', (e) => e.waitUntil(caches.keys()
  .then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k))))
  .then(() => self.clients.claim())))

// The shell from the network when there is one (a new version shows at once), the cache when not.
self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url)
  if (e.request.method !== 'GET' || url.origin !== location.origin || !FILES.includes(url.pathname)) return
  e.respondWith(fetch(e.request).then((res) => {
    if (res.ok) { const copy = res.clone(); caches.open(SHELL).then((c) => c.put(url.pathname, copy)) }
    return res
  }).catch(() => caches.match(url.pathname)))
})

self.addEventListener('push', (e) => {
  const msg = e.data ? e.data.json() : { title: 'ubiq', body: 'Open the app for details.', tag: 'ubiq', url: '/' }
  e.waitUntil(self.registration.showNotification(msg.title, { body: msg.body, tag: msg.tag, icon: '/icon.svg', badge: '/icon.svg', data: { url: msg.url } }))
})

self.addEventListener('notificationclick', (e) => {
  e.notification.close()
  const url = e.notification.data?.url || '/'
  e.waitUntil(self.clients.matchAll({ type: 'window' }).then((open) => open.find((c) => 'focus' in c)?.focus() ?? self.clients.openWindow(url)))
})
