import type { Logger } from 'pino';

interface Closable {
  close(): Promise<void>;
}

/**
 * SIGTERM / SIGINT: stop accepting, let running requests finish (long-polls answer at once), close the
 * database, exit 0. Whatever is still running at `timeoutMs` is abandoned with exit 1; a second signal
 * exits at once.
 */
export function exitOnSignals(hs: Closable, logger: Logger, timeoutMs: number): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal during shutdown: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, timeout_ms: timeoutMs }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.warn({ timeout_ms: timeoutMs }, 'shutdown_timeout reached: exiting with work unfinished');
      process.exit(1);
    }, timeoutMs);
    hs.close().then(
      () => {
        clearTimeout(deadline);
        logger.info('shut down');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
