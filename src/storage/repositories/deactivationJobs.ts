import type { Db } from '../database.js';

// Durable deactivation jobs (migrations/0020_deactivation_jobs.ts): one row per user, the next step to run.

export interface DeactivationJob {
  userId: string;
  erase: boolean;
  step: string;
  attempts: number;
}

interface Row {
  user_id: string;
  erase: boolean | number;
  step: string;
  attempts: number | string;
}

const toJob = (r: Row): DeactivationJob => ({ userId: r.user_id, erase: Boolean(r.erase), step: r.step, attempts: Number(r.attempts) });

/** A new job's step: the service starts it at its first step. */
export const FIRST_STEP = 'start';

/** Queues (or upgrades to erasure) the job of `userId`; a job already queued starts over (every step is idempotent). */
export async function putDeactivationJob(db: Db, userId: string, erase: boolean, now: number, step = FIRST_STEP): Promise<void> {
  const existing: Row | undefined = await db('deactivation_jobs').where({ user_id: userId }).first();
  if (existing) {
    await db('deactivation_jobs').where({ user_id: userId }).update({ erase: erase || Boolean(existing.erase), step, updated_ts: now });
  } else {
    await db('deactivation_jobs').insert({ user_id: userId, erase, step, attempts: 0, created_ts: now, updated_ts: now });
  }
}

export async function getDeactivationJob(db: Db, userId: string): Promise<DeactivationJob | undefined> {
  const row: Row | undefined = await db('deactivation_jobs').where({ user_id: userId }).first();
  return row ? toJob(row) : undefined;
}

export async function pendingDeactivationJobs(db: Db): Promise<DeactivationJob[]> {
  const rows: Row[] = await db('deactivation_jobs').orderBy('created_ts').select();
  return rows.map(toJob);
}

export async function advanceDeactivationJob(db: Db, userId: string, step: string, now: number): Promise<void> {
  await db('deactivation_jobs').where({ user_id: userId }).update({ step, updated_ts: now, last_error: null });
}

export async function recordDeactivationFailure(db: Db, userId: string, error: string, now: number): Promise<void> {
  await db('deactivation_jobs').where({ user_id: userId }).update({ last_error: error.slice(0, 500), updated_ts: now }).increment('attempts', 1);
}

export async function deleteDeactivationJob(db: Db, userId: string): Promise<void> {
  await db('deactivation_jobs').where({ user_id: userId }).delete();
}
