import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { freePort, pgTarget, testDialects } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const V3 = '/_matrix/client/v3';
/** Users with a device; an application service (no device: its txnIds are scoped to its token) sends too. */
const SENDERS = 3;
const AS_TOKEN = 'as-token-crash';
const IN_FLIGHT_PER_SENDER = 6;
const KILL_ROUNDS = 3;
/** Responses of a round after which the server is killed: the rest are in flight or not yet sent. */
const ANSWERS_BEFORE_KILL = 45;

/** Skjól as a real child process on a fixed port and database, so it can be killed with SIGKILL and restarted. */
class ChildServer {
  private child: ChildProcess | undefined;
  private output: string[] = [];

  constructor(
    readonly baseUrl: string,
    private readonly configPath: string,
  ) {}

  async start(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', '--config', this.configPath], {
      cwd: process.cwd(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    child.stderr!.on('data', (c: Buffer) => this.output.push(c.toString('utf8')));
    for (let i = 0; i < 600; i++) {
      if (child.exitCode !== null) throw new Error(`server exited during start-up: ${this.output.join('').slice(-2000)}`);
      const up = await fetch(`${this.baseUrl}/_matrix/client/versions`).then((r) => r.ok, () => false);
      if (up) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('server did not start');
  }

  async kill(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await gone;
  }
}

type Kind = 'toDevice' | 'message' | 'victim' | 'redact';

interface Job {
  kind: Kind;
  sender: number;
  txnId: string;
  /** Message id (to-device and messages) or the event to redact. */
  ref: string;
  /** The first answer; undefined while none came. */
  answer?: { event_id?: string };
}

describe.each(testDialects())('exactly once across kill -9 on %s', (dialect) => {
  const dir = mkdtempSync(join(tmpdir(), 'skjol-crash-'));
  const schema = `skjol_crash_${randomBytes(5).toString('hex')}`;
  let server: ChildServer | undefined;

  afterAll(async () => {
    await server?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    if (dialect === 'postgres') {
      const admin = knexFactory({ client: 'pg', connection: pgTarget() });
      await admin.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema]);
      await admin.destroy();
    }
  });

  it('delivers each to-device message, message and redaction once, and loses no acknowledged write, when retried with the same txnIds', async () => {
    const port = await freePort();
    const configPath = join(dir, 'homeserver.yaml');
    const registrationPath = join(dir, 'appservice.yaml');
    writeFileSync(
      registrationPath,
      toYaml({ id: 'crash', url: null, as_token: AS_TOKEN, hs_token: 'hs-token-crash', sender_localpart: 'crashbot', namespaces: { users: [], aliases: [] }, rate_limited: false }),
    );
    writeFileSync(
      configPath,
      toYaml({
        server_name: 'localhost',
        listeners: [{ port, bind_addresses: ['127.0.0.1'], type: 'http' }],
        database:
          dialect === 'sqlite'
            ? { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } }
            : { name: 'postgres', args: { ...pgTarget(), schema, cp_max: 5 } },
        signing_key_path: join(dir, 'signing.key'),
        media_store_path: join(dir, 'media'),
        enable_registration: true,
        enable_registration_without_verification: true,
        rc_enabled: false,
        app_service_config_files: [registrationPath],
        log_level: 'error',
      }),
    );
    server = new ChildServer(`http://127.0.0.1:${port}`, configPath);
    const base = server.baseUrl;
    await server.start();

    const receiver = await registerUser(base, 'receiver');
    const senders: TestUser[] = [];
    for (let i = 0; i < SENDERS; i++) senders.push(await registerUser(base, `sender${i}`));
    senders.push({ userId: '@crashbot:localhost', accessToken: AS_TOKEN, deviceId: '', password: '' });
    const room = await request(base, 'POST', `${V3}/createRoom`, { token: senders[0]!.accessToken, body: { preset: 'public_chat' } });
    const roomId: string = room.body.room_id;
    for (const s of senders.slice(1)) expect((await request(base, 'POST', `${V3}/join/${encodeURIComponent(roomId)}`, { token: s.accessToken, body: {} })).status).toBe(200);
    const noRooms = encodeURIComponent(JSON.stringify({ room: { rooms: [] }, presence: { types: [] }, account_data: { types: [] } }));
    const since0: string = (await request(base, 'GET', `${V3}/sync?timeout=0&filter=${noRooms}`, { token: receiver.accessToken })).body.next_batch;

    const jobs: Job[] = [];
    const unexpected: string[] = [];
    /** Acknowledged victims of each sender not yet handed to a redaction. */
    const victims: string[][] = senders.map(() => []);
    let counter = 0;
    const unansweredAtKill: number[] = [];

    const perform = async (job: Job): Promise<{ event_id?: string } | undefined> => {
      const s = senders[job.sender]!;
      const path =
        job.kind === 'toDevice'
          ? `${V3}/sendToDevice/m.test.crash/${job.txnId}`
          : job.kind === 'redact'
            ? `${V3}/rooms/${encodeURIComponent(roomId)}/redact/${encodeURIComponent(job.ref)}/${job.txnId}`
            : `${V3}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${job.txnId}`;
      const body =
        job.kind === 'toDevice'
          ? { messages: { [receiver.userId]: { [receiver.deviceId]: { id: job.ref } } } }
          : job.kind === 'redact'
            ? { reason: 'crash test' }
            : { msgtype: 'm.text', body: `${job.kind}:${job.ref}` };
      let res;
      try {
        res = await request(base, 'PUT', path, { token: s.accessToken, body });
      } catch {
        return undefined; // killed in flight, or not listening: no answer
      }
      if (res.status !== 200) {
        unexpected.push(`${job.kind} ${job.txnId}: ${res.status} ${JSON.stringify(res.body)}`);
        return undefined;
      }
      return res.body;
    };

    const acknowledge = (job: Job, answer: { event_id?: string }) => {
      if (job.answer) {
        // A retry of an answered request must give the same answer.
        if (JSON.stringify(answer) !== JSON.stringify(job.answer)) unexpected.push(`${job.kind} ${job.txnId} answered ${JSON.stringify(answer)} then ${JSON.stringify(job.answer)}`);
        return;
      }
      job.answer = answer;
      if (job.kind === 'victim' && answer.event_id) victims[job.sender]!.push(answer.event_id);
    };

    const nextJob = (sender: number): Job => {
      const n = counter++;
      const cycle: Kind[] = ['toDevice', 'message', 'victim', 'redact'];
      let kind = cycle[n % cycle.length]!;
      if (kind === 'redact' && !victims[sender]!.length) kind = 'toDevice';
      const ref = kind === 'redact' ? victims[sender]!.shift()! : `m${n}`;
      const job: Job = { kind, sender, txnId: `txn-${n}`, ref };
      jobs.push(job);
      return job;
    };

    for (let round = 0; round < KILL_ROUNDS; round++) {
      let answers = 0;
      let killed: Promise<void> | undefined;
      const lane = async (sender: number) => {
        while (!killed) {
          const job = nextJob(sender);
          const answer = await perform(job);
          if (answer) acknowledge(job, answer);
          if (answer && ++answers >= ANSWERS_BEFORE_KILL) killed ??= server!.kill('SIGKILL');
        }
      };
      const lanes: Array<Promise<void>> = [];
      for (let s = 0; s < senders.length; s++) for (let k = 0; k < IN_FLIGHT_PER_SENDER; k++) lanes.push(lane(s));
      await Promise.all(lanes);
      await killed;
      unansweredAtKill.push(jobs.filter((j) => !j.answer).length);

      await server.start();
      // Every request without an answer is retried with its txnId, and every third answered one too.
      const retries = jobs.filter((j, i) => !j.answer || i % 3 === 0);
      await Promise.all(
        retries.map(async (job) => {
          const answer = await perform(job);
          if (answer) acknowledge(job, answer);
          else unexpected.push(`${job.kind} ${job.txnId}: no answer after restart`);
        }),
      );
    }

    // What the receiving device gets, sync after sync, until nothing is left.
    const delivered = new Map<string, number>();
    let since = since0;
    for (;;) {
      const res = await request(base, 'GET', `${V3}/sync?timeout=0&filter=${noRooms}&since=${encodeURIComponent(since)}`, { token: receiver.accessToken });
      const events: Array<{ type: string; content: { id: string } }> = res.body.to_device?.events ?? [];
      for (const e of events) if (e.type === 'm.test.crash') delivered.set(e.content.id, (delivered.get(e.content.id) ?? 0) + 1);
      since = res.body.next_batch;
      if (!events.length) break;
    }

    // The whole room timeline.
    const timeline: Array<{ event_id: string; type: string; content: { body?: string; redacts?: string }; redacts?: string }> = [];
    let from: string | undefined;
    for (;;) {
      const res = await request(base, 'GET', `${V3}/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=500${from ? `&from=${encodeURIComponent(from)}` : ''}`, {
        token: senders[0]!.accessToken,
      });
      timeline.push(...res.body.chunk);
      if (!res.body.end || !res.body.chunk.length) break;
      from = res.body.end;
    }
    const inTimeline = new Set(timeline.map((e) => e.event_id));
    const bodies = new Map<string, number>();
    const redactionsOf = new Map<string, number>();
    for (const e of timeline) {
      if (e.type === 'm.room.message' && e.content.body) bodies.set(e.content.body, (bodies.get(e.content.body) ?? 0) + 1);
      const target = e.type === 'm.room.redaction' ? (e.content.redacts ?? e.redacts) : undefined;
      if (target) redactionsOf.set(target, (redactionsOf.get(target) ?? 0) + 1);
    }

    const count = (kind: Kind, seen: (job: Job) => number) => {
      const of = jobs.filter((j) => j.kind === kind);
      return { sent: of.length, duplicated: of.filter((j) => seen(j) > 1).length, missing: of.filter((j) => seen(j) === 0).length };
    };
    const summary = {
      toDevice: count('toDevice', (j) => delivered.get(j.ref) ?? 0),
      message: count('message', (j) => bodies.get(`message:${j.ref}`) ?? 0),
      redaction: count('redact', (j) => redactionsOf.get(j.ref) ?? 0),
      acknowledgedLost: jobs.filter((j) => j.answer?.event_id !== undefined && !inTimeline.has(j.answer.event_id)).length,
      unanswered: jobs.filter((j) => !j.answer).length,
      unexpected,
    };
    const ok = (sent: number) => ({ sent, duplicated: 0, missing: 0 });
    expect(summary).toEqual({
      toDevice: ok(summary.toDevice.sent),
      message: ok(summary.message.sent),
      redaction: ok(summary.redaction.sent),
      acknowledgedLost: 0,
      unanswered: 0,
      unexpected: [],
    });
    // Each kill left requests without an answer, so retries after a crash really were exercised.
    expect(unansweredAtKill.every((n) => n > 0)).toBe(true);
  }, 120_000);
});
