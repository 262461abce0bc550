import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { configSchema, type HomeserverConfig } from './schema.js';

export class ConfigError extends Error {}

// One line per problem, naming the key, so a wrong key or value stops start-up clearly.
export function describeIssues(error: z.ZodError, source: string): string {
  const lines = error.issues.map((issue) => {
    const key = issue.path.join('.') || '(top level)';
    if (issue.code === 'unrecognized_keys') {
      const where = issue.path.length ? `${issue.path.join('.')}.` : '';
      return `  unknown key${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.map((k) => where + k).join(', ')}`;
    }
    return `  ${key}: ${issue.message}`;
  });
  return `Invalid configuration in ${source}:\n${lines.join('\n')}`;
}

export function parseConfig(raw: unknown, source = 'configuration'): HomeserverConfig {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(describeIssues(result.error, source));
  return result.data;
}

/** Reads a YAML file; a missing file or bad YAML is a ConfigError naming the file. */
export function readYamlFile(path: string, what = 'Configuration file'): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`Cannot read ${what.toLowerCase()} ${path}: ${(err as Error).message}`);
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${what} ${path} is not valid YAML: ${(err as Error).message}`);
  }
}

export function loadConfigFile(path: string): HomeserverConfig {
  const config = parseConfig(readYamlFile(path), path);
  // Registration files are named relative to this file (as bridge.yaml's paths are), not to the working directory.
  const base = dirname(resolve(path));
  config.app_service_config_files = config.app_service_config_files.map((file) => resolve(base, file));
  return config;
}

export function defaultConfig(overrides: Record<string, unknown> = {}): HomeserverConfig {
  return parseConfig({ server_name: 'localhost', ...overrides }, 'defaults');
}
