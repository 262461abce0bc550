import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExportDirectory, ExportError, safeSegment } from '../../src/export/exportDirectory.js';

describe('export directory', () => {
  const base = mkdtempSync(join(tmpdir(), 'skjol-export-dir-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it.each([
    ['!abc:example.org', '!abc:example.org'],
    ['..', '%2E%2E'],
    ['.hidden', '%2Ehidden'],
    ['!a/../../etc:x', '!a%2F%2E%2E%2F%2E%2E%2Fetc%3Ax'],
    ['!a\\b:x', '!a%5Cb%3Ax'],
    ['!nul\u0000:x', '!nul%00%3Ax'],
    ['', '%'],
  ])('keeps a room or media id inside the directory: %j', (id, expected) => {
    const segment = safeSegment(id);
    expect(segment).toBe(expected);
    expect(segment).not.toMatch(/[/\\\u0000]/);
    expect(segment === '.' || segment === '..').toBe(false);
  });

  it('shortens ids too long for a file name, keeping distinct ids distinct', () => {
    const a = safeSegment(`!${'a'.repeat(300)}:x`);
    const b = safeSegment(`!${'a'.repeat(300)}:y`);
    expect(a.length).toBeLessThanOrEqual(200);
    expect(a).not.toBe(b);
  });

  it('refuses a directory that is not empty, and a path that is a file', () => {
    const busy = join(base, 'busy');
    const file = join(base, 'file');
    ExportDirectory.open(busy, '@a:x').writeJson(['x.json'], {});
    expect(() => ExportDirectory.open(busy, '@a:x')).toThrow(ExportError);
    writeFileSync(file, 'x');
    expect(() => ExportDirectory.open(file, '@a:x')).toThrow(/not a directory/);
    expect(readdirSync(busy)).toEqual(['x.json']);
  });

  it('writes a JSON array one element at a time', () => {
    const dir = ExportDirectory.open(join(base, 'arr'), '@a:x');
    const empty = dir.jsonArray(['empty.json']);
    empty.close();
    const two = dir.jsonArray(['sub', 'two.json']);
    two.push({ a: 1 });
    two.push('\u2028');
    two.close();
    expect(JSON.parse(readFileSync(join(base, 'arr', 'empty.json'), 'utf8'))).toEqual([]);
    expect(JSON.parse(readFileSync(join(base, 'arr', 'sub', 'two.json'), 'utf8'))).toEqual([{ a: 1 }, '\u2028']);
  });
});
