import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';

// Every key path the schema accepts, e.g. `listeners.resources.names` (arrays are transparent, records end a path).
function schemaKeys(schema: unknown, prefix = '', out = new Set<string>()): Set<string> {
  const def = (schema as { _zod: { def: Record<string, any> } })._zod.def;
  switch (def.type) {
    case 'object':
      for (const [key, value] of Object.entries(def.shape as Record<string, unknown>)) {
        const path = prefix ? `${prefix}.${key}` : key;
        out.add(path);
        schemaKeys(value, path, out);
      }
      break;
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
      schemaKeys(def.innerType, prefix, out);
      break;
    case 'pipe':
      schemaKeys(def.in, prefix, out);
      break;
    case 'array':
      schemaKeys(def.element, prefix, out);
      break;
    case 'union':
      for (const option of def.options as unknown[]) schemaKeys(option, prefix, out);
      break;
  }
  return out;
}

/**
 * The key paths config.example.yaml shows, set or commented out: a line `key:` (or `- key:`), after an
 * optional `# `, nested under the closest less-indented key above it. Prose comments start with a capital
 * or do not end the word with a colon, so they are not keys.
 */
function exampleKeys(text: string): Set<string> {
  const out = new Set<string>();
  const stack: Array<{ indent: number; key: string }> = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^(\s*)# ?/, '$1');
    const match = /^(\s*)(- )?([a-z][a-z0-9_]*):(\s|$)/.exec(line);
    if (!match) continue;
    const indent = match[1]!.length + (match[2] ? 2 : 0);
    while (stack.length && stack[stack.length - 1]!.indent >= indent) stack.pop();
    const path = [...stack.map((s) => s.key), match[3]!].join('.');
    out.add(path);
    stack.push({ indent, key: match[3]! });
  }
  return out;
}

describe('config.example.yaml', () => {
  const documented = exampleKeys(readFileSync('config.example.yaml', 'utf8'));
  const accepted = schemaKeys(configSchema);

  it('shows every key the configuration accepts (set, or commented out)', () => {
    expect([...accepted].filter((k) => !documented.has(k)).sort()).toEqual([]);
  });

  it('shows no key the configuration would refuse', () => {
    expect([...documented].filter((k) => !accepted.has(k)).sort()).toEqual([]);
  });
});
