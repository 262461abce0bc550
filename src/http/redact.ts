// Query parameters whose values are secrets: access tokens (`access_token`, and the `token` of
// registration-token validity and 3PID submit_token), `client_secret`, login tokens, passwords, signatures.
const SECRET_PARAM = /token|secret|password|passwd|sig|key/i;

function decodedName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

/**
 * The request target for the logs: the path as received and the query with the value of every
 * secret-looking parameter replaced by `<redacted>` (Synapse's redact_uri does this for access_token and
 * client_secret). The names stay, so a reader still sees what was asked.
 */
export function redactedUri(uri: string): string {
  const q = uri.indexOf('?');
  if (q < 0) return uri;
  const params = uri
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      return eq >= 0 && SECRET_PARAM.test(decodedName(name)) ? `${name}=<redacted>` : pair;
    });
  return `${uri.slice(0, q)}?${params.join('&')}`;
}
