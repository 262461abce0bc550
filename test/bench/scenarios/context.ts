import type { BenchClient } from '../client.js';
import type { BenchServer } from '../server.js';

export interface ScenarioContext {
  client: BenchClient;
  server: BenchServer;
  /** Progress output (stderr), so stdout carries only the report. */
  log(message: string): void;
  /** Distinct prefix per run for user names. */
  runId: string;
}
