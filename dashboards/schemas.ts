/** The shapes every dashboards route answers in, for fastify's serialisation and the OpenAPI document. */
import { Type, type TProperties, type TSchema } from '@sinclair/typebox'
import type { PublishedSchemas } from '../ingest/index.ts'
import { PremiumAdjustment } from '../pricing/index.ts'
import { eventTypes, PolicyEvent, Score } from '../scoring/index.ts'
import { FeedMessage, FeedNotice, FeedQuery } from './feed.ts'

export const ErrorBody = Type.Object({ error: Type.String(), message: Type.String(), code: Type.Optional(Type.String({ description: 'its code in the error catalogue (docs/errors.md)' })) })
/** An object with these properties and no others: fastify serialises these, and the contract test holds answers to exactly them. */
export const strict = <P extends TProperties>(properties: P, options: { description?: string } = {}) => Type.Object(properties, { ...options, additionalProperties: false })
/** `schema`, or null. */
export const Nullable = <S extends TSchema>(schema: S) => Type.Union([schema, Type.Null()])
export const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody }

/** What ubiq emits over MQTT and the feed, for the AsyncAPI document (ingest/contract-docs.ts). */
export const publishedSchemas: PublishedSchemas = { score: Score, event: PolicyEvent, eventTypes, premium: PremiumAdjustment, feed: { query: FeedQuery, message: FeedMessage, notice: FeedNotice } }
