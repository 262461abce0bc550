import { RawReply, defineRoute, type RouteDefinition } from '../http/route.js';
import { contentDisposition, isInlineSafe } from '../media/headers.js';
import type { MediaService } from '../media/mediaService.js';
import { mediaMultipart } from '../media/multipart.js';
import { fetchQuery, thumbnailQuery, thumbnailRequest, timeoutParam } from '../media/params.js';
import type { OpenedFile } from '../media/store.js';
import { FEDERATION_V1 } from './routes.js';

// Spec: Server-Server API, "Content Repository" (v1.11, MSC3916): our own media for other servers,
// X-Matrix authenticated, as multipart/mixed with empty metadata and the bytes (never a redirect).

function multipartReply(file: OpenedFile, headers: Record<string, string>): RawReply {
  const m = mediaMultipart(headers, file.body, file.size);
  return new RawReply(200, m.body, { 'Content-Type': m.contentType, 'Content-Length': String(m.contentLength) });
}

export function mediaApiRoutes(media: MediaService, serverName: string): RouteDefinition[] {
  return [
    // Spec: GET /_matrix/federation/v1/media/download/{mediaId}
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/media/download/:mediaId',
      auth: 'server',
      query: fetchQuery,
      handler: async (ctx) => {
        const d = await media.download(serverName, ctx.params.mediaId!, timeoutParam(ctx.query.timeout_ms), false);
        return multipartReply(d.file, {
          'Content-Type': d.contentType,
          'Content-Disposition': contentDisposition(isInlineSafe(d.contentType) ? 'inline' : 'attachment', d.filename),
        });
      },
    }),
    // Spec: GET /_matrix/federation/v1/media/thumbnail/{mediaId}
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/media/thumbnail/:mediaId',
      auth: 'server',
      query: thumbnailQuery,
      handler: async (ctx) => {
        const t = await media.thumbnail(serverName, ctx.params.mediaId!, thumbnailRequest(ctx.query, false));
        const ext = t.contentType.split('/')[1] ?? 'png';
        return multipartReply(t.file, { 'Content-Type': t.contentType, 'Content-Disposition': contentDisposition('inline', `thumbnail.${ext}`) });
      },
    }),
  ];
}
