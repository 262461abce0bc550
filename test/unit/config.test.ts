import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, loadConfigFile, parseConfig } from '../../src/config/load.js';
import { parseSize } from '../../src/config/schema.js';

describe('configuration', () => {
  it('runs on defaults: localhost, port 8008, SQLite under ./data', () => {
    const config = defaultConfig();
    expect(config.server_name).toBe('localhost');
    expect(config.listeners[0]!.port).toBe(8008);
    expect(config.database).toEqual({ name: 'sqlite3', args: { database: './data/homeserver.db' } });
  });

  it('names an unknown key', () => {
    expect(() => parseConfig({ server_name: 'example.org', enable_registrations: true }, 'hs.yaml')).toThrow(/enable_registrations/);
  });

  it('names a key with a wrong value', () => {
    expect(() => parseConfig({ server_name: 'example.org', listeners: [{ port: 'eighty' }] }, 'hs.yaml')).toThrow(/listeners\.0\.port/);
    expect(() => parseConfig({ server_name: 'not a name!' }, 'hs.yaml')).toThrow(ConfigError);
    expect(() => parseConfig({ server_name: 'example.org', database: { name: 'mysql', args: {} } }, 'hs.yaml')).toThrow(/database/);
  });

  it('accepts Synapse-style PostgreSQL settings', () => {
    const config = parseConfig({
      server_name: 'example.org',
      database: { name: 'psycopg2', args: { user: 'synapse', password: 'x', dbname: 'synapse', host: 'db', cp_min: 5, cp_max: 10 } },
    });
    expect(config.database.name).toBe('psycopg2');
  });

  it('accepts the documented config.example.yaml as it ships', () => {
    const config = loadConfigFile('config.example.yaml');
    expect(config.server_name).toBe('example.org');
    expect(config.listeners[0]!.x_forwarded).toBe(true);
  });

  it('parses sizes with units', () => {
    expect(parseSize('50M')).toBe(50 * 1024 * 1024);
    expect(parseSize('10K')).toBe(10240);
    expect(parseSize(123)).toBe(123);
  });
});
