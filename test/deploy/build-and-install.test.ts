import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { freePort } from '../helpers/homeserver.js';

// What the README tells an admin to do, done the same way: the Dockerfile's build steps, the compiled
// `skjol` command reached through the symlink `npm install -g` / `npm link` make, the systemd unit.

const run = promisify(execFile);
const SLOW = 600_000;
const root = process.cwd();
const has = (cmd: string, args: string[]) => run(cmd, args).then(() => true, () => false);
const dockerDaemon = await has('docker', ['info']);
const systemdAnalyze = await has('systemd-analyze', ['--version']);

interface Stage {
  copies: Array<{ from?: string; sources: string[]; dest: string }>;
  runs: string[];
  entrypoint: string[];
  cmd: string[];
}

/** The Dockerfile's stages: COPY, RUN, ENTRYPOINT and CMD lines (the only instructions it uses that act). */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const line of text.split('\n').map((l) => l.trim())) {
    const [op, ...rest] = line.split(/\s+/);
    if (op === 'FROM') stages.push({ copies: [], runs: [], entrypoint: [], cmd: [] });
    const stage = stages.at(-1);
    if (!stage) continue;
    if (op === 'COPY') {
      const from = rest[0]?.startsWith('--from=') ? rest.shift()!.slice('--from='.length) : undefined;
      stage.copies.push({ ...(from ? { from } : {}), sources: rest.slice(0, -1), dest: rest.at(-1)! });
    }
    if (op === 'RUN') stage.runs.push(rest.join(' '));
    if (op === 'ENTRYPOINT') stage.entrypoint = JSON.parse(rest.join(' ')) as string[];
    if (op === 'CMD') stage.cmd = JSON.parse(rest.join(' ')) as string[];
  }
  return stages;
}

/** .dockerignore as Docker reads it for top-level names (the only kind this file has). */
function ignored(name: string): boolean {
  const patterns = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  return patterns.some((p) => (p.startsWith('*') ? name.endsWith(p.slice(1)) : name === p || name.startsWith(`${p}/`)));
}

describe('building and installing Skjól as the README says', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skjol-build-'));
  const context = join(dir, 'app');
  const stages = parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  beforeAll(async () => {
    // The build stage, step by step, in a fresh directory: COPY what the Dockerfile copies (and .dockerignore
    // lets through), `npm ci` replaced by this checkout's node_modules, then the build.
    const build = stages[0]!;
    mkdirSync(context);
    for (const copy of build.copies) {
      for (const source of copy.sources) {
        expect(ignored(source), `${source} is copied but .dockerignore excludes it`).toBe(false);
        cpSync(join(root, source), join(context, copy.dest.endsWith('/') ? source : copy.dest), { recursive: true });
      }
    }
    symlinkSync(join(root, 'node_modules'), join(context, 'node_modules'));
    expect(build.runs[0]).toMatch(/^npm ci\b/);
    const [buildStep] = build.runs[1]!.split(' && ');
    expect(buildStep).toBe('npm run build');
    await run('npm', ['run', 'build'], { cwd: context }); // npm prune is left out: node_modules is shared here
  }, SLOW);

  it('the Dockerfile copies nothing .dockerignore leaves out, and keeps secrets and local data out of the context', () => {
    for (const stage of stages) for (const c of stage.copies) if (!c.from) for (const s of c.sources) expect(ignored(s)).toBe(false);
    for (const secret of ['signing.key', 'homeserver.db', 'homeserver.yaml', 'data', 'node_modules', '.git']) expect(ignored(secret)).toBe(true);
  });

  it('the built image command serves, from the compiled code, and stops on SIGTERM', async () => {
    const final = stages.at(-1)!;
    expect(final.entrypoint.slice(0, 1)).toEqual(['node']);
    expect(existsSync(join(context, 'dist', 'src', 'main.js'))).toBe(true);
    // The container's /data, here a directory with the config the README gives for Docker (port changed).
    const data = join(dir, 'data');
    mkdirSync(data);
    const port = await freePort();
    writeFileSync(
      join(data, 'homeserver.yaml'),
      toYaml({
        server_name: 'example.org',
        listeners: [{ port, bind_addresses: ['127.0.0.1'], x_forwarded: true }],
        database: { name: 'sqlite3', args: { database: join(data, 'homeserver.db') } },
        signing_key_path: join(data, 'signing.key'),
        media_store_path: join(data, 'media_store'),
      }),
    );
    const args = [...final.entrypoint.slice(1), ...final.cmd.map((a) => a.replace('/data/', `${data}/`))];
    const child = spawn(process.execPath, args, { cwd: context, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr.on('data', (c: Buffer) => (log += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    let versions: Response | undefined;
    for (let i = 0; i < 1200 && child.exitCode === null && !versions; i++) {
      versions = await fetch(`http://127.0.0.1:${port}/_matrix/client/versions`).catch(() => undefined);
      if (!versions) await new Promise((r) => setTimeout(r, 100));
    }
    expect(versions?.status, log).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(log).toMatch(/"server_name":"example.org","msg":"Skjól is serving"/);
    expect(existsSync(join(data, 'signing.key'))).toBe(true);
  }, SLOW);

  it('`skjol help` through the symlink npm install -g / npm link create lists every command', async () => {
    const bin = join(dir, 'prefix', 'bin');
    mkdirSync(bin, { recursive: true });
    const pkg = JSON.parse(readFileSync(join(context, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    symlinkSync(join(context, pkg.bin.skjol!), join(bin, 'skjol'));
    const { stdout } = await run(join(bin, 'skjol'), ['help']);
    for (const command of ['serve', 'register-user', 'export-data', 'deactivate-user', 'generate-signing-key', 'backup', 'migrate', 'bridge irc']) {
      expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
    // The published package carries the compiled server and its migrations.
    const { stdout: packed } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: context });
    const files = (JSON.parse(packed) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['bin/skjol.js', 'dist/src/main.js', 'dist/migrations/index.js']));
  }, SLOW);

  it.skipIf(!systemdAnalyze)('systemd-analyze verify accepts contrib/skjol.service (ExecStart pointed at this skjol)', async () => {
    const unit = readFileSync(join(root, 'contrib', 'skjol.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/local\/bin\/skjol serve --config \/etc\/skjol\/homeserver.yaml$/m);
    const bin = join(dir, 'prefix', 'bin', 'skjol');
    if (!existsSync(bin)) symlinkSync(join(context, 'bin', 'skjol.js'), bin);
    const path = join(dir, 'skjol.service');
    writeFileSync(path, unit.replace('/usr/local/bin/skjol', bin));
    const { stderr } = await run('systemd-analyze', ['verify', path]);
    expect(stderr).toBe('');
  });

  it.skipIf(!dockerDaemon)('docker build succeeds', async () => {
    await run('docker', ['build', '-t', 'skjol-test', root], { timeout: SLOW - 10_000 });
  }, SLOW);
});
