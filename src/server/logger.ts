// The logger interface modules take (a pino subset), and the pino-backed one the CLI builds.
import pino from 'pino';

/** What a module needs from a logger; pino satisfies it, tests can pass their own. */
export interface Logger {
  trace(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: object): Logger;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Structured JSON logs to a file descriptor (stderr by default).
 * Fields that could carry secrets are redacted even if a caller logs them by mistake.
 */
export function createLogger(level: LogLevel, fd = 2): Logger {
  return pino(
    {
      level,
      base: { name: 'switchboard' },
      redact: {
        paths: ['password', '*.password', 'token', '*.token', 'authorization', '*.authorization'],
        censor: '[redacted]',
      },
    },
    pino.destination({ fd, sync: true }),
  );
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
