/** The shapes every dashboards route answers in, for fastify's serialisation and the OpenAPI document. */
import { Type } from '@sinclair/typebox'

export const ErrorBody = Type.Object({ error: Type.String(), message: Type.String() })
/** A JSON object body: its fields are described in the route's description. */
export const Json = Type.Object({}, { additionalProperties: true })
export const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody }
