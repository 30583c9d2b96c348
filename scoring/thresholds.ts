/**
 * Detector thresholds, declared once (#22): each detector's configuration is a schema whose fields
 * carry their default and why it is that. The detector reads the values; scoring's detector
 * catalogue (detectors.ts) turns the schemas into ubiq's configuration, with the same defaults.
 */
import { Type, type Static, type TNumber, type TObject } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

/** A threshold or window: its default, and what it is and why (shown in `ubiq --help` and the README). */
export const threshold = (value: number, description: string): TNumber => Type.Number({ default: value, description })

/** A configuration as its schema's defaults give it. */
export const defaultsOf = <T extends TObject>(schema: T): Static<T> => Value.Default(schema, {}) as Static<T>
