/** "4 s", "2 min": how long until the next attempt, as the user reads it. */
export function inTime(ms: number): string {
  return ms < 90_000 ? `${Math.max(1, Math.round(ms / 1000))} s` : `${Math.round(ms / 60_000)} min`;
}

/** What the admin room says when the IRC server refused or closed a user's connection, quoting the server. */
export function connectionTroubleText(network: string, reason: string, wasRegistered: boolean, retryInMs: number | undefined): string {
  const said = `IRC ${network} ${wasRegistered ? 'closed' : 'refused'} your connection: “${reason}”.`;
  if (retryInMs === undefined) {
    return `${said} The bridge stopped trying, and your messages waiting for ${network} were not delivered. Say something in a ${network} room (or !join) to try again.`;
  }
  return `${said} Trying again in ${inTime(retryInMs)}; your messages wait until then.`;
}

/** What the portal says about a message held up (or dropped) by a refused connection. */
export function waitingLineText(reason: string, retryInMs: number | undefined, preview: string): string {
  if (retryInMs === undefined) return `your message “${preview}” was not delivered: IRC refused the connection (“${reason}”).`;
  return `your message “${preview}” is waiting: IRC refused the connection (“${reason}”); trying again in ${inTime(retryInMs)}.`;
}
