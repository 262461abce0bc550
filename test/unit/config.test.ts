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

  it("takes Synapse's top-level certificate for tls listeners that name none, and refuses a tls listener without one", () => {
    const config = parseConfig({
      server_name: 'example.org',
      tls_certificate_path: '/etc/skjol/cert.pem',
      tls_private_key_path: '/etc/skjol/key.pem',
      listeners: [{ port: 8008 }, { port: 8448, tls: true, resources: [{ names: ['federation'] }] }],
    });
    expect(config.listeners[1]).toMatchObject({ tls_certificate_path: '/etc/skjol/cert.pem', tls_private_key_path: '/etc/skjol/key.pem' });
    expect(config.listeners[0]!.tls_certificate_path).toBeUndefined();
    expect(() => parseConfig({ server_name: 'example.org', listeners: [{ port: 8448, tls: true }] })).toThrow(/listeners\.0\.tls: tls: true needs/);
    // A key that would do nothing is refused rather than ignored.
    expect(() => parseConfig({ server_name: 'example.org', tls_certificate_path: '/c.pem', tls_private_key_path: '/k.pem' })).toThrow(/no listener has tls: true/);
    expect(() => parseConfig({ server_name: 'example.org', listeners: [{ port: 8008, tls_certificate_path: '/c.pem' }] })).toThrow(/tls is false/);
  });

  it('gives listeners their resources: client and federation by default, metrics on a metrics listener', () => {
    const config = parseConfig({ server_name: 'example.org', enable_metrics: true, listeners: [{ port: 8008 }, { port: 9000, type: 'metrics' }] });
    expect(config.listeners.map((l) => l.resources)).toEqual([[{ names: ['client', 'federation'] }], [{ names: ['metrics'] }]]);
  });

  it('refuses listener settings Skjól would not honour', () => {
    const refused = (listener: Record<string, unknown>, extra: Record<string, unknown> = {}) => () => parseConfig({ server_name: 'example.org', listeners: [listener], ...extra });
    expect(refused({ port: 8008, resources: [{ names: ['client'], compress: true }] })).toThrow(/compress: true is not supported/);
    expect(refused({ port: 8008, resources: [{ names: ['replication'] }] })).toThrow(/listeners\.0\.resources\.0\.names/);
    expect(refused({ port: 9000, type: 'metrics' })).toThrow(/enable_metrics is not true/);
    expect(refused({ port: 8008, resources: [{ names: ['client', 'metrics'] }] })).toThrow(/enable_metrics is not true/);
    expect(refused({ port: 9000, type: 'metrics', resources: [{ names: ['client'] }] }, { enable_metrics: true })).toThrow(/metrics listener serves only/);
    expect(refused({ port: 8008, type: 'manhole' })).toThrow(/listeners\.0\.type/);
    // Synapse's resource list with compress: false, as its sample config writes it, is fine.
    expect(parseConfig({ server_name: 'example.org', listeners: [{ port: 8008, resources: [{ names: ['client', 'federation'], compress: false }] }] })).toBeTruthy();
  });

  it('refuses, as Synapse, a notary without verify_keys when certificates are not checked', () => {
    const base = { server_name: 'example.org', federation_verify_certificates: false };
    expect(() => parseConfig({ ...base, trusted_key_servers: [{ server_name: 'notary.example' }] })).toThrow(/trusted_key_servers\.0: has no verify_keys/);
    expect(parseConfig({ ...base, trusted_key_servers: [{ server_name: 'notary.example', accept_keys_insecurely: true }] })).toBeTruthy();
    expect(parseConfig({ ...base, trusted_key_servers: [{ server_name: 'notary.example', verify_keys: { 'ed25519:a': 'AAAA' } }] })).toBeTruthy();
    expect(parseConfig({ server_name: 'example.org', trusted_key_servers: [{ server_name: 'notary.example' }] })).toBeTruthy();
  });
});
