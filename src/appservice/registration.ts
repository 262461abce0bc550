import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

// Spec: Application Service API, "Registration". One YAML file per application service, listed in the
// homeserver config under `app_service_config_files`.

export interface NamespaceEntry {
  exclusive: boolean;
  /** Anchored (^…$) compiled form of `source`: the whole ID must match. */
  regex: RegExp;
  /** The regex as written in the registration file. */
  source: string;
}

export interface AppserviceRegistration {
  id: string;
  /** Base URL of the service; null when the service receives no pushes (spec: `url: null`). */
  url: string | null;
  asToken: string;
  hsToken: string;
  senderLocalpart: string;
  namespaces: {
    users: NamespaceEntry[];
    aliases: NamespaceEntry[];
    rooms: NamespaceEntry[];
  };
  rateLimited: boolean;
  protocols: string[];
  /** `receive_ephemeral` or MSC2409's `de.sorunome.msc2409.push_ephemeral`. */
  receiveEphemeral: boolean;
  /** MSC3202 (`org.matrix.msc3202`): device masquerading, device lists / OTK counts in transactions. */
  msc3202: boolean;
  /** MSC4190 (`io.element.msc4190`): device management for appservice users. */
  msc4190?: boolean;
  /** The file the registration came from (for messages). */
  file?: string;
}

const namespaceEntry = z.object({
  exclusive: z.boolean(),
  regex: z.string().min(1),
});

const namespaceList = z.array(namespaceEntry).nullish();

const registrationSchema = z.object({
  id: z.string().min(1),
  url: z.string().url().nullable(),
  as_token: z.string().min(1),
  hs_token: z.string().min(1),
  sender_localpart: z.string().min(1),
  namespaces: z
    .object({
      users: namespaceList,
      aliases: namespaceList,
      rooms: namespaceList,
    })
    .default({}),
  rate_limited: z.boolean().nullish(),
  protocols: z.array(z.string()).nullish(),
  receive_ephemeral: z.boolean().nullish(),
  'de.sorunome.msc2409.push_ephemeral': z.boolean().nullish(),
  'org.matrix.msc3202': z.boolean().nullish(),
  'io.element.msc4190': z.boolean().nullish(),
});

export class RegistrationError extends Error {
  constructor(
    readonly file: string,
    readonly field: string | undefined,
    message: string,
  ) {
    super(`Application service registration ${file}${field ? `: field '${field}'` : ''}: ${message}`);
    this.name = 'RegistrationError';
  }
}

function compileNamespace(file: string, field: string, entries: Array<{ exclusive: boolean; regex: string }> | null | undefined): NamespaceEntry[] {
  return (entries ?? []).map((entry, index) => {
    try {
      return { exclusive: entry.exclusive, source: entry.regex, regex: new RegExp(`^(?:${entry.regex})$`) };
    } catch (err) {
      throw new RegistrationError(file, `${field}.${index}.regex`, `invalid regular expression: ${(err as Error).message}`);
    }
  });
}

/** Parses and validates one registration document (already read from `file`). */
export function parseRegistration(text: string, file: string): AppserviceRegistration {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new RegistrationError(file, undefined, `not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new RegistrationError(file, undefined, 'expected a YAML mapping');
  }
  const parsed = registrationSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RegistrationError(file, issue.path.join('.') || undefined, issue.message);
  }
  const r = parsed.data;
  if (!/^[a-z0-9._=\-/+]+$/.test(r.sender_localpart)) {
    throw new RegistrationError(file, 'sender_localpart', 'not a valid user ID localpart');
  }
  if (r.as_token === r.hs_token) throw new RegistrationError(file, 'hs_token', 'must differ from as_token');
  const registration: AppserviceRegistration = {
    id: r.id,
    url: r.url === null ? null : r.url.replace(/\/+$/, ''),
    asToken: r.as_token,
    hsToken: r.hs_token,
    senderLocalpart: r.sender_localpart,
    namespaces: {
      users: compileNamespace(file, 'namespaces.users', r.namespaces.users),
      aliases: compileNamespace(file, 'namespaces.aliases', r.namespaces.aliases),
      rooms: compileNamespace(file, 'namespaces.rooms', r.namespaces.rooms),
    },
    rateLimited: r.rate_limited ?? true,
    protocols: r.protocols ?? [],
    receiveEphemeral: (r.receive_ephemeral ?? false) || (r['de.sorunome.msc2409.push_ephemeral'] ?? false),
    msc3202: r['org.matrix.msc3202'] ?? false,
    file,
  };
  if (r['io.element.msc4190'] !== undefined && r['io.element.msc4190'] !== null) registration.msc4190 = r['io.element.msc4190'];
  return registration;
}

/**
 * Reads every registration file. Throws a RegistrationError naming the file and field on the first
 * problem, including a duplicate id, as_token or hs_token across files.
 */
export function loadRegistrations(paths: readonly string[]): AppserviceRegistration[] {
  const result: AppserviceRegistration[] = [];
  const ids = new Map<string, string>();
  const tokens = new Map<string, string>();
  for (const file of paths) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new RegistrationError(file, undefined, `cannot be read: ${(err as Error).message}`);
    }
    const reg = parseRegistration(text, file);
    const sameId = ids.get(reg.id);
    if (sameId !== undefined) throw new RegistrationError(file, 'id', `'${reg.id}' is already used by ${sameId}`);
    ids.set(reg.id, file);
    for (const [field, token] of [['as_token', reg.asToken], ['hs_token', reg.hsToken]] as const) {
      const other = tokens.get(token);
      if (other !== undefined) throw new RegistrationError(file, field, `token is already used by ${other}`);
      tokens.set(token, file);
    }
    result.push(reg);
  }
  return result;
}
