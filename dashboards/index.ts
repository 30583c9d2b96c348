/** dashboards: the REST API, the websocket feed and the pages. */
export { startDashboards, type DashboardsDeps, type FeedMessage, type FeedNotice } from './server.ts'
export { tokenAuthority, tokenSecret, type Principal, type TokenAuthority } from './auth.ts'
export { publishedSchemas } from './schemas.ts'
export { defaultAlertThresholds, prometheusRules, PROMETHEUS_RULES, type AlertThresholds } from './alerts.ts'
export type { Erase, Erasure } from './privacy.ts'
export { pushAlerts, PUSH_HOSTS, type PushAlerts } from './push.ts'
export { followBroker } from './follow.ts'
