/** dashboards: the REST API, the websocket feed and the pages. */
export { startDashboards, type DashboardsDeps, type FeedMessage } from './server.ts'
