/** How a network's connections come back after a refusal or a lost connection (networks.<id>.reconnect). */
export interface ReconnectSettings {
  /** First delay; it doubles with every failed attempt. */
  base_ms: number;
  /** Cap of the doubling (a network that asks for a longer wait gets it). */
  max_ms: number;
  /** Refusals in a row (the server said why it would not take us) before a Matrix user's connection stops trying. */
  give_up_after: number;
  /** Wait after a refusal that says "too fast" without naming how long. */
  throttle_ms: number;
}

export const DEFAULT_RECONNECT: ReconnectSettings = { base_ms: 1000, max_ms: 300_000, give_up_after: 5, throttle_ms: 60_000 };

// ircd-ratbox/charybdis "Throttled", InspIRCd connectban "attempting to connect too many times … Wait a while",
// ngircd/others "too fast", "try again later".
const THROTTLED = /throttl|too (fast|soon|many times|quickly)|wait a while|try again later|reconnecting too/i;

/** How long the server asked us to wait ("wait 30 seconds", "in 5 minutes"), if it said. */
export function askedWaitMs(reason: string): number | undefined {
  const m = /(\d+)\s*(seconds?|secs?|s\b|minutes?|mins?|m\b)/i.exec(reason);
  if (!m) return undefined;
  return Number(m[1]) * (m[2]!.toLowerCase().startsWith('m') ? 60_000 : 1000);
}

export function isThrottled(reason: string): boolean {
  return THROTTLED.test(reason);
}

/** Exponential backoff that honours throttling and gives up after repeated refusals. */
export class Backoff {
  private attempt = 0;
  private refusals = 0;

  constructor(
    private readonly settings: ReconnectSettings,
    /** The bridge's own connection never gives up. */
    private readonly mayGiveUp: boolean,
  ) {}

  registered(): void {
    this.attempt = 0;
    this.refusals = 0;
  }

  get refusalCount(): number {
    return this.refusals;
  }

  /** The delay before the next attempt after losing one (with the server's reason, if it gave one); undefined: give up. */
  next(reason: string | undefined, wasRegistered: boolean): number | undefined {
    if (wasRegistered) this.registered();
    else if (reason) this.refusals++;
    if (this.mayGiveUp && this.refusals >= this.settings.give_up_after) return undefined;
    let delay = Math.min(this.settings.base_ms * 2 ** this.attempt, this.settings.max_ms);
    this.attempt++;
    if (reason && isThrottled(reason)) delay = Math.max(delay, askedWaitMs(reason) ?? this.settings.throttle_ms);
    return delay;
  }
}

/** The server turned our connection away (ERROR, 465 banned, 463 not allowed, throttled …), in its words. */
export class IrcRefusedError extends Error {
  constructor(
    readonly reason: string,
    /** When the next attempt is made; undefined when the bridge stopped trying. */
    readonly retryInMs: number | undefined,
  ) {
    super(`IRC refused the connection: ${reason}`);
    this.name = 'IrcRefusedError';
  }
}
