import { baseContentType } from './thumbnailer.js';

// Response headers for media (spec: Client-Server API, "Serving inline content" and "Content repository").

/** Types a browser may render in place; everything else is served as an attachment. */
const INLINE_SAFE = new Set([
  'text/css',
  'text/plain',
  'text/csv',
  'application/json',
  'application/ld+json',
  'image/jpeg',
  'image/gif',
  'image/png',
  'image/apng',
  'image/webp',
  'image/avif',
  'video/mp4',
  'video/webm',
  'video/ogg',
  'video/quicktime',
  'audio/mp4',
  'audio/webm',
  'audio/aac',
  'audio/mpeg',
  'audio/ogg',
  'audio/wave',
  'audio/wav',
  'audio/x-wav',
  'audio/x-pn-wav',
  'audio/flac',
  'audio/x-flac',
]);

export function isInlineSafe(contentType: string | undefined): boolean {
  return INLINE_SAFE.has(baseContentType(contentType));
}

// RFC 5987 attr-char is ALPHA / DIGIT / "!#$&+-.^_`|~"; encodeURIComponent leaves ' ( ) * as they are.
function encodeExtValue(value: string): string {
  return encodeURIComponent(value).replace(/['()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/**
 * A Content-Disposition value (RFC 6266): printable ASCII names as a quoted string, anything else as
 * `filename*=utf-8''…` (RFC 5987 percent-encoding), as Synapse does.
 */
export function contentDisposition(type: 'inline' | 'attachment', filename: string | undefined): string {
  // Control characters never belong in a header, and a path separator never in a saved file's name.
  const name = filename?.replace(/[\u0000-\u001f\u007f]/g, '').replace(/[/\\]/g, '_');
  if (!name) return type;
  if (/^[\x20-\x7e]+$/.test(name)) return `${type}; filename="${name.replace(/"/g, '\\"')}"`;
  return `${type}; filename*=utf-8''${encodeExtValue(name)}`;
}

/** Headers every media reply carries: no script may run in it, and any origin may embed it. */
export function mediaSecurityHeaders(): Record<string, string> {
  return {
    'Content-Security-Policy':
      "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
    'Cross-Origin-Resource-Policy': 'cross-origin',
    'X-Content-Type-Options': 'nosniff',
  };
}
