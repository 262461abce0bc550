import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import Ajv2020Module from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';

// Validates response bodies against the Matrix specification's OpenAPI (../shared/matrix-spec) when the
// folder is present. Schemas check required fields and types, not behaviour.

const SPEC_ROOT = resolve(process.cwd(), '..', 'shared', 'matrix-spec');
const API_DIRS = ['api/client-server', 'api/application-service', 'api/server-server'];

interface Operation {
  method: string;
  regex: RegExp;
  /** Literal characters in the template, to prefer /rooms/{id}/state over /rooms/{id}/{x}. */
  specificity: number;
  fileUrl: string;
  pointer: string;
  responses: Record<string, unknown>;
}

function walk(dir: string, out: string[]): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.yaml') || name.endsWith('.json')) out.push(p);
  }
}

function escapePointer(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

class SpecValidator {
  private readonly ajv: InstanceType<typeof Ajv2020Module.default>;
  private readonly operations: Operation[] = [];
  private readonly compiled = new Map<string, ValidateFunction | null>();

  constructor() {
    const Ajv2020 = Ajv2020Module.default;
    this.ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: false, validateSchema: false });
    const files: string[] = [];
    walk(SPEC_ROOT, files);
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      const doc = (file.endsWith('.json') ? JSON.parse(text) : parseYaml(text)) as Record<string, unknown> | null;
      if (!doc || typeof doc !== 'object') continue;
      const id = pathToFileURL(file).href;
      const { $schema: _ignored, ...schema } = doc;
      this.ajv.addSchema({ ...schema, $id: id }, id);
      const isApi = API_DIRS.some((d) => file.startsWith(join(SPEC_ROOT, d) + '/')) && doc.paths !== undefined;
      if (isApi) this.indexOperations(doc, id);
    }
  }

  private indexOperations(doc: Record<string, unknown>, fileUrl: string): void {
    const servers = doc.servers as Array<{ variables?: { basePath?: { default?: string } } }> | undefined;
    const basePath = servers?.[0]?.variables?.basePath?.default ?? '';
    for (const [template, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      for (const [method, op] of Object.entries(item)) {
        if (!['get', 'put', 'post', 'delete'].includes(method)) continue;
        const full = basePath + template;
        const regex = new RegExp(
          '^' + full.split(/\{[^}]+\}/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[^/]+') + '/?$',
        );
        this.operations.push({
          method: method.toUpperCase(),
          regex,
          specificity: full.replace(/\{[^}]+\}/g, '').length,
          fileUrl,
          pointer: `#/paths/${escapePointer(template)}/${method}/responses`,
          responses: ((op as Record<string, unknown>).responses ?? {}) as Record<string, unknown>,
        });
      }
    }
  }

  /** Returns a list of problems (empty when the body fits the spec or no schema applies). */
  check(method: string, url: string, status: number, body: unknown): string[] {
    const path = new URL(url, 'http://x').pathname.replace(/\/_matrix\/client\/r0\//, '/_matrix/client/v3/').replace(/\/_matrix\/media\/r0\//, '/_matrix/media/v3/');
    const decoded = path.split('/').map((seg) => seg).join('/');
    const candidates = this.operations
      .filter((op) => op.method === method.toUpperCase() && op.regex.test(decoded))
      .sort((a, b) => b.specificity - a.specificity);
    const op = candidates[0];
    if (!op) return [];
    const response = op.responses[String(status)] as { content?: Record<string, unknown> } | undefined;
    if (!response?.content?.['application/json']) return [];
    const key = `${op.fileUrl}${op.pointer}/${status}/content/application~1json/schema`;
    let validate = this.compiled.get(key);
    if (validate === undefined) {
      try {
        validate = this.ajv.getSchema(key) ?? null;
      } catch (err) {
        validate = null;
        return [`could not compile schema ${key}: ${(err as Error).message}`];
      }
      this.compiled.set(key, validate);
    }
    if (!validate) return [];
    if (validate(body)) return [];
    return (validate.errors ?? []).map((e) => `${method} ${path} ${status}: ${e.instancePath || '(body)'} ${e.message} ${JSON.stringify(e.params)}`);
  }
}

let instance: SpecValidator | null | undefined;

/** The validator, or null when ../shared/matrix-spec is not present. Built once per test file (worker). */
export function specValidator(): SpecValidator | null {
  if (instance === undefined) instance = existsSync(SPEC_ROOT) ? new SpecValidator() : null;
  return instance;
}

/** Throws when a JSON response does not match its operation's schema in the specification. */
export function assertSpecShaped(method: string, url: string, status: number, body: unknown): void {
  const problems = specValidator()?.check(method, url, status, body) ?? [];
  if (problems.length) throw new Error(`Response does not match the Matrix spec:\n  ${problems.slice(0, 5).join('\n  ')}`);
}
