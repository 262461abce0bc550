import pino, { type Logger } from 'pino';

// Secrets never reach logs: these paths are censored wherever they appear in a logged object.
const REDACT = [
  'password', '*.password', 'new_password', '*.new_password', 'access_token', '*.access_token',
  'refresh_token', '*.refresh_token', 'token', '*.token', 'authorization', '*.authorization',
  'headers.authorization', '*.headers.authorization', 'registration_shared_secret', '*.registration_shared_secret',
  'seed', '*.seed', 'as_token', '*.as_token', 'hs_token', '*.hs_token',
];

export function createLogger(level: string): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: undefined });
}
