/**
 * Durability under crashes: `npm run bench:durability [-- --rounds 25 --clients 20 --load-ms 1500 --postgres --tsx]`.
 *
 * Clients send room messages and to-device messages, each with its own txnId, while the server is killed
 * with SIGKILL; after each restart on the same database every request left without an answer is retried
 * with its txnId. At the end it counts, from what clients see (/messages and the receiver's /sync), the
 * acknowledged writes that were lost and the writes that arrived twice. Exit code 1 if any was.
 */
import { parseArgs } from 'node:util';
import { BenchClient, createRoom, joinRoom, pool, register, registerMany, type BenchUser } from './client.js';
import { BenchServer, sleep } from './server.js';
import { fmtInt } from './stats.js';

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;
const log = (message: string) => process.stderr.write(`[durability ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

interface Write {
  kind: 'message' | 'toDevice';
  user: number;
  txnId: string;
  id: string;
  acked: boolean;
  eventId?: string;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string' },
      clients: { type: 'string' },
      'load-ms': { type: 'string' },
      postgres: { type: 'boolean', default: false },
      tsx: { type: 'boolean', default: false },
    },
  });
  const rounds = Number(values.rounds ?? 25);
  const clients = Number(values.clients ?? 20);
  const loadMs = Number(values['load-ms'] ?? 1500);
  const pg = values.postgres
    ? {
        host: process.env.SKJOL_TEST_PG_HOST ?? '127.0.0.1',
        port: Number(process.env.SKJOL_TEST_PG_PORT ?? 5432),
        user: process.env.SKJOL_TEST_PG_USER ?? 'postgres',
        database: process.env.SKJOL_TEST_PG_DATABASE ?? 'test',
      }
    : undefined;

  log(`starting Skjól (${pg ? 'PostgreSQL' : 'SQLite'})…`);
  const { server } = await BenchServer.start({ postgres: pg, compiled: !values.tsx });
  process.once('exit', () => server.killNow());
  let client = new BenchClient(server.baseUrl);
  try {
    const users = await registerMany(client, 'writer', clients);
    const receiver = await register(client, 'receiver');
    const roomId = await createRoom(client, users[0]!);
    await pool(users.slice(1), 8, (u) => joinRoom(client, u, roomId));
    const noRooms = enc(JSON.stringify({ room: { rooms: [] }, presence: { types: [] }, account_data: { types: [] } }));
    const since0 = (await client.request('GET', `${C}/sync?timeout=0&filter=${noRooms}`, { token: receiver.accessToken })).body.next_batch as string;

    const writes: Write[] = [];
    let n = 0;
    const attempt = async (w: Write): Promise<void> => {
      const u: BenchUser = users[w.user]!;
      const res = await client
        .request(
          'PUT',
          w.kind === 'message'
            ? `${C}/rooms/${enc(roomId)}/send/m.room.message/${w.txnId}`
            : `${C}/sendToDevice/m.bench.durability/${w.txnId}`,
          {
            token: u.accessToken,
            body: w.kind === 'message' ? { msgtype: 'm.text', body: w.id } : { messages: { [receiver.userId]: { [receiver.deviceId]: { id: w.id } } } },
            timeoutMs: 30_000,
          },
        )
        .catch(() => undefined);
      if (res?.status !== 200) return;
      w.acked = true;
      if (w.kind === 'message') w.eventId = (res.body as { event_id: string }).event_id;
    };

    for (let round = 1; round <= rounds; round++) {
      let stop = false;
      const lane = async (user: number) => {
        while (!stop) {
          const i = n++;
          const w: Write = { kind: i % 2 ? 'toDevice' : 'message', user, txnId: `d${i}`, id: `w${i}`, acked: false };
          writes.push(w);
          await attempt(w);
        }
      };
      const lanes = users.map((_, u) => lane(u));
      // A varying moment, so the kill lands in every phase of a write.
      await sleep(loadMs / 2 + Math.random() * loadMs);
      stop = true;
      await server.crash();
      await Promise.all(lanes);
      client.close();
      const restartMs = await server.restart();
      client = new BenchClient(server.baseUrl);
      const open = writes.filter((w) => !w.acked);
      await pool(open, 32, (w) => attempt(w));
      const still = writes.filter((w) => !w.acked).length;
      log(`round ${round}/${rounds}: ${fmtInt(writes.length)} writes so far, ${open.length} retried after a restart of ${Math.round(restartMs)} ms${still ? `, ${still} STILL UNANSWERED` : ''}`);
    }

    // What clients see.
    const inTimeline = new Map<string, number>();
    const eventIds = new Set<string>();
    let from = '';
    for (;;) {
      const res = await client.request('GET', `${C}/rooms/${enc(roomId)}/messages?dir=b&limit=1000${from ? `&from=${enc(from)}` : ''}`, { token: users[0]!.accessToken });
      const chunk = (res.body as { chunk: Array<{ event_id: string; type: string; content: { body?: string } }> }).chunk;
      for (const e of chunk) {
        eventIds.add(e.event_id);
        if (e.type === 'm.room.message' && e.content.body) inTimeline.set(e.content.body, (inTimeline.get(e.content.body) ?? 0) + 1);
      }
      const end = (res.body as { end?: string }).end;
      if (!end || !chunk.length) break;
      from = end;
    }
    const delivered = new Map<string, number>();
    let since = since0;
    for (;;) {
      const res = await client.request('GET', `${C}/sync?timeout=0&filter=${noRooms}&since=${enc(since)}`, { token: receiver.accessToken });
      const events = ((res.body as { to_device?: { events?: Array<{ content: { id: string } }> } }).to_device?.events ?? []);
      for (const e of events) delivered.set(e.content.id, (delivered.get(e.content.id) ?? 0) + 1);
      since = (res.body as { next_batch: string }).next_batch;
      if (!events.length) break;
    }

    const acked = writes.filter((w) => w.acked);
    const seen = (w: Write) => (w.kind === 'message' ? (inTimeline.get(w.id) ?? 0) : (delivered.get(w.id) ?? 0));
    const lost = acked.filter((w) => seen(w) === 0 || (w.eventId !== undefined && !eventIds.has(w.eventId))).length;
    const twice = writes.filter((w) => seen(w) > 1).length;
    const messages = acked.filter((w) => w.kind === 'message').length;
    process.stdout.write(
      `\n## Skjól durability (${pg ? 'PostgreSQL' : 'SQLite'})\n\n` +
        `${fmtInt(lost)} of ${fmtInt(acked.length)} acknowledged writes lost across ${rounds} crashes ` +
        `(${fmtInt(messages)} room messages, ${fmtInt(acked.length - messages)} to-device messages, ${clients} clients); ` +
        `${fmtInt(twice)} delivered twice; ${fmtInt(writes.length - acked.length)} never answered.\n\n`,
    );
    return lost || twice || writes.length !== acked.length ? 1 : 0;
  } finally {
    client.close();
    await server.stop();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    log(`failed: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  },
);
