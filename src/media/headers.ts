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

/** What a client or remote sent as Content-Type, or the spec's default; kept verbatim when it is a sane header. */
export function normaliseContentType(value: string | undefined): string {
  const v = value?.trim();
  if (!v || v.length > 255 || !/^[\x20-\x7e]+$/.test(v)) return 'application/octet-stream';
  return v;
}

/** The file name in a Content-Disposition value (`filename*=utf-8''…` preferred); undefined when absent or unusable. */
export function filenameOf(disposition: string | undefined): string | undefined {
  if (!disposition) return undefined;
  const ext = /(?:^|;)\s*filename\*\s*=\s*utf-8''([^;\s]+)/i.exec(disposition);
  let name: string | undefined;
  if (ext) {
    try {
      name = decodeURIComponent(ext[1]!);
    } catch {
      name = undefined;
    }
  }
  if (name === undefined) {
    const plain = /(?:^|;)\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(disposition);
    name = plain ? (plain[1]?.replace(/\\(.)/g, '$1') ?? plain[2]) : undefined;
  }
  if (!name || name.length > 255) return undefined;
  return name;
}
