import { z } from 'zod';
import { invalidParam, missingParam } from '../errors.js';
import type { ThumbnailRequest } from './mediaService.js';
import type { ThumbnailMethod } from './thumbnailer.js';

// Query parameters shared by the client and federation media endpoints (spec: Client-Server API,
// "Content repository"; Server-Server API, "Content Repository").

export const fetchQuery = z.object({ timeout_ms: z.string().optional(), allow_remote: z.string().optional() });
export const thumbnailQuery = z.object({
  width: z.string().optional(),
  height: z.string().optional(),
  method: z.string().optional(),
  animated: z.string().optional(),
  timeout_ms: z.string().optional(),
  allow_remote: z.string().optional(),
});

export function timeoutParam(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw invalidParam('timeout_ms must be a non-negative integer');
  return Number(value);
}

function dimension(value: string | undefined, name: string): number {
  if (value === undefined) throw missingParam(`Missing parameter '${name}'`);
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 100_000) throw invalidParam(`${name} must be a positive integer`);
  return Number(value);
}

export function booleanParam(value: string | undefined, name: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw invalidParam(`${name} must be true or false`);
}

/** A thumbnail request from its query; `allow_remote` only where the endpoint has it (the legacy ones). */
export function thumbnailRequest(q: z.output<typeof thumbnailQuery>, withAllowRemote: boolean): ThumbnailRequest {
  const width = dimension(q.width, 'width');
  const height = dimension(q.height, 'height');
  const method = (q.method ?? 'scale') as ThumbnailMethod;
  if (method !== 'scale' && method !== 'crop') throw invalidParam("method must be 'crop' or 'scale'");
  return {
    width,
    height,
    method,
    animated: booleanParam(q.animated, 'animated'),
    timeoutMs: timeoutParam(q.timeout_ms),
    allowRemote: withAllowRemote ? booleanParam(q.allow_remote, 'allow_remote') !== false : true,
  };
}
