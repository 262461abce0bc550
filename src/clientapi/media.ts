import { z } from 'zod';
import { unrecognized } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V1, RawReply, defineRoute, type RouteDefinition } from '../http/route.js';
import { contentDisposition, isInlineSafe, mediaSecurityHeaders } from '../media/headers.js';
import type { Download, ThumbnailReply } from '../media/mediaService.js';
import { booleanParam, fetchQuery, thumbnailQuery, thumbnailRequest, timeoutParam } from '../media/params.js';

// Spec: Client-Server API, "Content repository". The legacy /_matrix/media/{v3,r0,v1} endpoints (download
// and thumbnail unauthenticated, as before v1.11) and the authenticated /_matrix/client/v1/media ones.
// Under enable_authenticated_media the legacy downloads serve only media stored while it was off.

const MEDIA_LEGACY = ['/_matrix/media/v3', '/_matrix/media/r0', '/_matrix/media/v1'] as const;
const MEDIA_V1 = ['/_matrix/media/v1'] as const;
const CLIENT_MEDIA = CLIENT_V1.map((p) => `${p}/media`);

const uploadQuery = z.object({ filename: z.string().optional() });

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function downloadReply(d: Download, fileName: string | undefined, authenticated: boolean): RawReply {
  const inline = isInlineSafe(d.contentType);
  return new RawReply(200, d.file.body, {
    'Content-Type': d.contentType,
    'Content-Length': String(d.file.size),
    'Content-Disposition': contentDisposition(inline ? 'inline' : 'attachment', fileName ?? d.filename),
    'Cache-Control': authenticated ? 'private, max-age=86400' : 'public, max-age=86400, s-maxage=86400',
    ...mediaSecurityHeaders(),
  });
}

function thumbnailReply(t: ThumbnailReply, authenticated: boolean): RawReply {
  const ext = t.contentType.split('/')[1] ?? 'png';
  return new RawReply(200, t.file.body, {
    'Content-Type': t.contentType,
    'Content-Length': String(t.file.size),
    'Content-Disposition': contentDisposition('inline', `thumbnail.${ext}`),
    'Cache-Control': authenticated ? 'private, max-age=86400' : 'public, max-age=86400, s-maxage=86400',
    ...mediaSecurityHeaders(),
  });
}

export function mediaRoutes(services: Services): RouteDefinition[] {
  const media = services.media;
  const config = () => ({ 'm.upload.size': media.maxUploadSize });

  // allow_remote exists only on the legacy (unauthenticated) endpoints, which other servers also use.
  const downloadHandler = (authenticated: boolean) => async (ctx: { params: Record<string, string>; query: z.output<typeof fetchQuery> }) => {
    const allowRemote = authenticated || booleanParam(ctx.query.allow_remote, 'allow_remote') !== false;
    const d = await media.download(ctx.params.serverName!, ctx.params.mediaId!, timeoutParam(ctx.query.timeout_ms), allowRemote, !authenticated);
    return downloadReply(d, ctx.params.fileName, authenticated);
  };

  const thumbnailHandler = (authenticated: boolean) => async (ctx: { params: Record<string, string>; query: z.output<typeof thumbnailQuery> }) => {
    const t = await media.thumbnail(ctx.params.serverName!, ctx.params.mediaId!, { ...thumbnailRequest(ctx.query, !authenticated), unauthenticated: !authenticated });
    return thumbnailReply(t, authenticated);
  };

  const previewDisabled = () => {
    // No outbound requests from here: URL previews would have the server fetch arbitrary URLs.
    throw unrecognized('URL previews are disabled on this server');
  };

  return [
    // Spec: "POST /_matrix/media/v3/upload"
    defineRoute({
      method: 'POST',
      prefixes: MEDIA_LEGACY,
      path: '/upload',
      auth: 'user',
      rawBody: 'stream',
      maxBodyBytes: media.maxUploadSize,
      query: uploadQuery,
      handler: async (ctx) => ({
        content_uri: await media.upload(ctx.requester.userId, ctx.upload, header(ctx.headers['content-type']), ctx.query.filename),
      }),
    }),
    // Spec: "POST /_matrix/media/v1/create"
    defineRoute({
      method: 'POST',
      prefixes: MEDIA_V1,
      path: '/create',
      auth: 'user',
      handler: (ctx) => media.create(ctx.requester.userId),
    }),
    // Spec: "PUT /_matrix/media/v3/upload/{serverName}/{mediaId}"
    defineRoute({
      method: 'PUT',
      prefixes: MEDIA_LEGACY,
      path: '/upload/:serverName/:mediaId',
      auth: 'user',
      rawBody: 'stream',
      maxBodyBytes: media.maxUploadSize,
      query: uploadQuery,
      handler: async (ctx) => {
        await media.uploadTo(
          ctx.requester.userId,
          ctx.params.serverName!,
          ctx.params.mediaId!,
          ctx.upload,
          header(ctx.headers['content-type']),
          ctx.query.filename,
        );
        return {};
      },
    }),

    // Spec: "GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}]" (deprecated, no auth)
    defineRoute({
      method: 'GET',
      prefixes: MEDIA_LEGACY,
      path: '/download/:serverName/:mediaId{/:fileName}',
      auth: 'none',
      query: fetchQuery,
      handler: downloadHandler(false),
    }),
    // Spec: "GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]"
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_MEDIA,
      path: '/download/:serverName/:mediaId{/:fileName}',
      auth: 'user',
      allowGuests: true,
      query: fetchQuery,
      handler: downloadHandler(true),
    }),

    // Spec: "GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}" (deprecated, no auth)
    defineRoute({
      method: 'GET',
      prefixes: MEDIA_LEGACY,
      path: '/thumbnail/:serverName/:mediaId',
      auth: 'none',
      query: thumbnailQuery,
      handler: thumbnailHandler(false),
    }),
    // Spec: "GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}"
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_MEDIA,
      path: '/thumbnail/:serverName/:mediaId',
      auth: 'user',
      allowGuests: true,
      query: thumbnailQuery,
      handler: thumbnailHandler(true),
    }),

    // Spec: "GET /_matrix/media/v3/config" and "GET /_matrix/client/v1/media/config"
    defineRoute({ method: 'GET', prefixes: MEDIA_LEGACY, path: '/config', auth: 'user', allowGuests: true, handler: config }),
    defineRoute({ method: 'GET', prefixes: CLIENT_MEDIA, path: '/config', auth: 'user', allowGuests: true, handler: config }),

    // Spec: "GET /_matrix/media/v3/preview_url" and "GET /_matrix/client/v1/media/preview_url"
    defineRoute({ method: 'GET', prefixes: MEDIA_LEGACY, path: '/preview_url', auth: 'user', allowGuests: true, handler: previewDisabled }),
    defineRoute({ method: 'GET', prefixes: CLIENT_MEDIA, path: '/preview_url', auth: 'user', allowGuests: true, handler: previewDisabled }),
  ];
}
