import '../src/polyfills.js';
import { logger } from 'matrix-js-sdk/lib/logger.js';

// The SDK logs every request at debug level; tests read their own assertions, not its chatter.
(logger as unknown as { setLevel(level: string): void }).setLevel(process.env.SKJOL_TEST_SDK_LOG === 'debug' ? 'debug' : 'error');
