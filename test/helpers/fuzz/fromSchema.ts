// Bodies shaped like a route's zod schema, with hostile values mixed in, so inputs get past validation
// and reach handler logic. Reads zod 4's public `_zod.def` description of a schema.
import fc from 'fast-check';
import type { z } from 'zod';
import { bareObject, hostileJson } from './values.js';

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  options?: z.ZodType[];
  element?: z.ZodType;
  keyType?: z.ZodType;
  valueType?: z.ZodType;
  entries?: Record<string, string | number>;
  values?: unknown[];
  in?: z.ZodType;
  out?: z.ZodType;
  left?: z.ZodType;
  right?: z.ZodType;
  getter?: () => z.ZodType;
  catchall?: z.ZodType;
}

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** Field names the schema knows, at any depth: good keys for hostile objects too. */
export function schemaKeys(schema: z.ZodType | undefined, out = new Set<string>(), depth = 0): Set<string> {
  if (!schema || depth > 8) return out;
  const def = defOf(schema);
  if (def.shape) for (const [k, v] of Object.entries(def.shape)) (out.add(k), schemaKeys(v, out, depth + 1));
  for (const child of [def.innerType, def.element, def.valueType, def.in, def.out, def.left, def.right, ...(def.options ?? [])]) {
    if (child) schemaKeys(child, out, depth + 1);
  }
  return out;
}

/** Realistic strings for a field, picked by its name (room ids for room_id …); the pool otherwise. */
export type StringsFor = (field: string) => readonly string[];

/** Plain JSON made of realistic strings, small integers and the field names handlers read. */
export function benignJson(stringsFor: StringsFor): fc.Arbitrary<unknown> {
  const leaf = fc.oneof(fc.constantFrom(...stringsFor('')), fc.integer({ min: 0, max: 1000 }), fc.boolean());
  const key = fc.constantFrom('body', 'msgtype', 'membership', 'displayname', 'name', 'url', 'm.relates_to', 'rel_type', 'event_id', 'users', 'key');
  const { tree } = fc.letrec<{ tree: unknown }>((tie) => ({
    tree: fc.oneof(
      { depthSize: 'small' },
      { weight: 3, arbitrary: leaf },
      { weight: 1, arbitrary: fc.array(tie('tree'), { maxLength: 3 }) },
      { weight: 2, arbitrary: fc.array(fc.tuple(key, tie('tree')), { maxLength: 4 }).map(bareObject) },
    ),
  }));
  return tree;
}

/**
 * Values the schema accepts. With `hostile`, at each node with a small probability a hostile JSON value
 * instead, and objects sometimes gain prototype keys or lose required ones.
 */
export function fromSchema(schema: z.ZodType, stringsFor: StringsFor, hostile: boolean, field = '', depth = 0): fc.Arbitrary<unknown> {
  if (!hostile) return depth > 6 ? benignJson(stringsFor) : typed(schema, stringsFor, hostile, field, depth);
  const bad = hostileJson(stringsFor(field));
  if (depth > 6) return bad;
  return fc.oneof({ weight: 9, arbitrary: typed(schema, stringsFor, hostile, field, depth) }, { weight: 1, arbitrary: bad });
}

function typed(schema: z.ZodType, stringsFor: StringsFor, hostile: boolean, field: string, depth: number): fc.Arbitrary<unknown> {
  const def = defOf(schema);
  const next = (s: z.ZodType, f = field) => fromSchema(s, stringsFor, hostile, f, depth + 1);
  switch (def.type) {
    case 'object': {
      const entries = Object.entries(def.shape ?? {});
      // Hostile objects may lose required fields; clean ones keep them all and drop optional ones only.
      const fields = entries.map(([k, v]) => {
        const optional = ['optional', 'default', 'prefault'].includes(defOf(v).type);
        const val = next(v, k);
        return (hostile || optional ? fc.option(val, { nil: undefined, freq: 4 }) : val).map((x) => [k, x] as const);
      });
      const extra = hostile
        ? fc.option(fc.array(fc.tuple(fc.constantFrom('__proto__', 'constructor', 'prototype', 'extra'), hostileJson(stringsFor(''))), { maxLength: 2 }), { freq: 5 })
        : fc.option(fc.array(fc.tuple(fc.constantFrom('body', 'msgtype', 'extra'), benignJson(stringsFor)), { maxLength: 2 }), { freq: 2 });
      return fc.tuple(fc.tuple(...fields), extra).map(([vals, ext]) =>
        bareObject([...vals.filter(([, v]) => v !== undefined), ...(ext ?? [])] as [string, unknown][]),
      );
    }
    case 'record': {
      const real = fc.constantFrom(...stringsFor(field), ...stringsFor('key'));
      const key = hostile ? fc.oneof(real, fc.constantFrom('__proto__', 'constructor', 'prototype')) : real;
      return fc.array(fc.tuple(key, next(def.valueType!)), { maxLength: 3 }).map(bareObject);
    }
    case 'array':
      return fc.array(next(def.element!), { maxLength: 3 });
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'catch':
    case 'readonly':
    case 'nonoptional':
      return typed(def.innerType!, stringsFor, hostile, field, depth);
    case 'lazy':
      return typed(def.getter!(), stringsFor, hostile, field, depth + 1);
    case 'pipe':
      return typed(def.in!, stringsFor, hostile, field, depth);
    case 'union':
      return fc.oneof(...def.options!.map((o) => typed(o, stringsFor, hostile, field, depth)));
    case 'intersection':
      return fc.tuple(typed(def.left!, stringsFor, hostile, field, depth), typed(def.right!, stringsFor, hostile, field, depth)).map(([a, b]) =>
        typeof a === 'object' && a !== null && typeof b === 'object' && b !== null ? bareObject([...Object.entries(a), ...Object.entries(b)]) : a,
      );
    case 'enum':
      return fc.constantFrom(...Object.values(def.entries!));
    case 'literal':
      return fc.constantFrom(...def.values!);
    case 'string':
      return hostile
        ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...stringsFor(field)) }, { weight: 1, arbitrary: fc.string({ maxLength: 20 }) })
        : fc.constantFrom(...stringsFor(field));
    case 'number':
    case 'int':
      return fc.oneof(fc.integer({ min: -1, max: 100 }), fc.constantFrom(0, 1, 2 ** 31, 2 ** 53 - 1));
    case 'bigint':
      return fc.integer();
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    default:
      // unknown, any, custom …: anything at all
      return hostile ? hostileJson(stringsFor(field)) : benignJson(stringsFor);
  }
}
