/**
 * Lines written to an IRC server wait here until a PING sent after them is answered: the server reads a
 * connection in order, so its PONG proves it read every line before the PING. A line is never taken as
 * delivered just because the socket accepted it (the kernel drops unsent data when the process dies).
 */
export class Confirmations<T> {
  private written: T[] = [];
  private readonly pings = new Map<string, T[]>();
  private seq = 0;

  wrote(line: T): void {
    this.written.push(line);
  }

  /** The token of a PING to send now, covering everything written since the last one (none if nothing was). */
  checkpoint(): string | undefined {
    if (!this.written.length) return undefined;
    const token = `skjol-${Date.now().toString(36)}-${++this.seq}`;
    this.pings.set(token, this.written);
    this.written = [];
    return token;
  }

  /** The lines a PONG with `token` confirms (with those of earlier PINGs, answered in order). */
  confirmed(token: string): T[] {
    if (!this.pings.has(token)) return [];
    const lines: T[] = [];
    for (const [t, batch] of this.pings) {
      this.pings.delete(t);
      lines.push(...batch);
      if (t === token) break;
    }
    return lines;
  }

  get pending(): number {
    let n = this.written.length;
    for (const batch of this.pings.values()) n += batch.length;
    return n;
  }

  /** Everything not confirmed, oldest first: the connection is gone, so these are written again (or failed). */
  takeUnconfirmed(): T[] {
    const all = [...[...this.pings.values()].flat(), ...this.written];
    this.pings.clear();
    this.written = [];
    return all;
  }
}
