import type { Metadata, Sharp, SharpOptions } from 'sharp';

type SharpFactory = (input: Buffer, options?: SharpOptions) => Sharp;

// Thumbnails (spec: Client-Server API, "Thumbnails"). `scale` keeps the aspect ratio and fits inside the
// box without enlarging; `crop` fills the box exactly, cutting what overflows around the centre.

export type ThumbnailMethod = 'crop' | 'scale';

export interface ThumbnailSize {
  width: number;
  height: number;
  method: ThumbnailMethod;
}

/** Content types we decode; anything else (SVG, PDF, video …) cannot be thumbnailed here. */
const THUMBNAILABLE: Record<string, string> = {
  'image/jpeg': 'jpeg',
  'image/jpg': 'jpeg',
  'image/png': 'png',
  'image/apng': 'png',
  'image/gif': 'gif',
  'image/webp': 'webp',
};

export function baseContentType(contentType: string | undefined): string {
  return (contentType ?? 'application/octet-stream').split(';')[0]!.trim().toLowerCase();
}

export function canThumbnail(contentType: string | undefined): boolean {
  return Object.hasOwn(THUMBNAILABLE, baseContentType(contentType));
}

/**
 * The size to generate for a request. With `dynamic`, the box asked for (bounded by `maxDimension`);
 * otherwise one of the configured sizes, as Synapse does: the smallest of the requested method that
 * covers the box, else the largest of that method (any method when none is configured for it).
 */
export function selectThumbnailSize(
  requested: ThumbnailSize,
  configured: readonly ThumbnailSize[],
  dynamic: boolean,
  maxDimension = 2048,
): ThumbnailSize {
  if (dynamic) {
    return { width: Math.min(requested.width, maxDimension), height: Math.min(requested.height, maxDimension), method: requested.method };
  }
  const sameMethod = configured.filter((s) => s.method === requested.method);
  const candidates = sameMethod.length > 0 ? sameMethod : [...configured];
  const area = (s: ThumbnailSize) => s.width * s.height;
  const covering = candidates.filter((s) => s.width >= requested.width && s.height >= requested.height);
  if (covering.length > 0) return covering.reduce((a, b) => (area(b) < area(a) ? b : a));
  return candidates.reduce((a, b) => (area(b) > area(a) ? b : a));
}

export interface ImageInfo {
  format: string;
  /** Display dimensions (after EXIF orientation). */
  width: number;
  height: number;
  animated: boolean;
}

export interface Thumbnail {
  data: Buffer;
  contentType: string;
  width: number;
  height: number;
  animated: boolean;
}

export class ImageTooLarge extends Error {}
export class NotAnImage extends Error {}

export class Thumbnailer {
  private sharpLoaded: Promise<SharpFactory> | undefined;

  constructor(private readonly maxPixels: number) {}

  // libvips is loaded on the first thumbnail, not at start-up: an idle server does not pay its memory.
  private sharp(): Promise<SharpFactory> {
    this.sharpLoaded ??= import('sharp').then((mod) => {
      const sharp = mod.default;
      // libvips' operation cache keeps decoded images around; a server thumbnails each size once and
      // caches the result on disk, so the memory is better spent elsewhere.
      sharp.cache(false);
      return sharp as unknown as SharpFactory;
    });
    return this.sharpLoaded;
  }

  /** Reads the header only; throws NotAnImage for bytes sharp cannot decode or formats we do not serve. */
  async probe(bytes: Buffer): Promise<ImageInfo> {
    let meta: Metadata;
    try {
      const sharp = await this.sharp();
      meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    } catch {
      throw new NotAnImage('not a decodable image');
    }
    const format = meta.format ?? '';
    if (!['jpeg', 'png', 'gif', 'webp'].includes(format) || !meta.width || !meta.height) throw new NotAnImage(`cannot thumbnail ${format}`);
    const height = meta.pageHeight ?? meta.height;
    const rotated = (meta.orientation ?? 1) >= 5;
    return {
      format,
      width: rotated ? height : meta.width,
      height: rotated ? meta.width : height,
      animated: (meta.pages ?? 1) > 1,
    };
  }

  async generate(bytes: Buffer, info: ImageInfo, size: ThumbnailSize, animated: boolean): Promise<Thumbnail> {
    if (info.width * info.height > this.maxPixels) throw new ImageTooLarge('image too large to thumbnail');
    const keepAnimation = animated && info.animated;
    const sharp = await this.sharp();
    let pipeline = sharp(bytes, { animated: keepAnimation, limitInputPixels: this.maxPixels })
      .rotate()
      .resize(size.width, size.height, size.method === 'crop' ? { fit: 'cover', position: 'centre' } : { fit: 'inside', withoutEnlargement: true });
    let contentType: string;
    if (keepAnimation) {
      pipeline = pipeline.webp({ quality: 80 });
      contentType = 'image/webp';
    } else if (info.format === 'jpeg') {
      pipeline = pipeline.jpeg({ quality: 80, mozjpeg: true });
      contentType = 'image/jpeg';
    } else {
      pipeline = pipeline.png();
      contentType = 'image/png';
    }
    const { data, info: out } = await pipeline.toBuffer({ resolveWithObject: true });
    return { data, contentType, width: out.width, height: out.pageHeight ?? out.height, animated: keepAnimation };
  }
}
