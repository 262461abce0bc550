// Matrix error codes and the HTTP status each one travels with (spec: Client-Server API, "Standard error response").
export type ErrCode =
  | 'M_FORBIDDEN'
  | 'M_UNKNOWN_TOKEN'
  | 'M_MISSING_TOKEN'
  | 'M_USER_LOCKED'
  | 'M_USER_SUSPENDED'
  | 'M_BAD_JSON'
  | 'M_NOT_JSON'
  | 'M_NOT_FOUND'
  | 'M_LIMIT_EXCEEDED'
  | 'M_UNRECOGNIZED'
  | 'M_UNKNOWN'
  | 'M_UNAUTHORIZED'
  | 'M_USER_DEACTIVATED'
  | 'M_USER_IN_USE'
  | 'M_INVALID_USERNAME'
  | 'M_ROOM_IN_USE'
  | 'M_INVALID_ROOM_STATE'
  | 'M_THREEPID_IN_USE'
  | 'M_THREEPID_NOT_FOUND'
  | 'M_SERVER_NOT_TRUSTED'
  | 'M_UNSUPPORTED_ROOM_VERSION'
  | 'M_INCOMPATIBLE_ROOM_VERSION'
  | 'M_BAD_STATE'
  | 'M_GUEST_ACCESS_FORBIDDEN'
  | 'M_MISSING_PARAM'
  | 'M_INVALID_PARAM'
  | 'M_TOO_LARGE'
  | 'M_EXCLUSIVE'
  | 'M_RESOURCE_LIMIT_EXCEEDED'
  | 'M_CANNOT_LEAVE_SERVER_NOTICE_ROOM'
  | 'M_WEAK_PASSWORD'
  | 'M_PASSWORD_TOO_SHORT'
  | 'M_WRONG_ROOM_KEYS_VERSION'
  | 'M_NOT_YET_UPLOADED'
  | 'M_CANNOT_OVERWRITE_MEDIA'
  | 'M_UNABLE_TO_AUTHORISE_JOIN'
  | 'M_UNABLE_TO_GRANT_JOIN'
  | 'M_CONSENT_NOT_GIVEN'
  | 'M_TOKEN_INCORRECT'
  | 'M_BAD_ALIAS'
  | 'M_INVALID_SIGNATURE'
  | 'M_THREEPID_DENIED'
  | 'M_THREEPID_AUTH_FAILED'
  // MSC4186 sliding sync: the connection position is unknown; the client starts a new connection.
  | 'M_UNKNOWN_POS';

const DEFAULT_STATUS: Partial<Record<ErrCode, number>> = {
  M_FORBIDDEN: 403,
  M_UNKNOWN_TOKEN: 401,
  M_MISSING_TOKEN: 401,
  M_USER_LOCKED: 401,
  M_USER_SUSPENDED: 403,
  M_UNAUTHORIZED: 401,
  M_USER_DEACTIVATED: 403,
  M_NOT_FOUND: 404,
  M_LIMIT_EXCEEDED: 429,
  M_UNRECOGNIZED: 404,
  M_UNKNOWN: 500,
  M_TOO_LARGE: 413,
  M_GUEST_ACCESS_FORBIDDEN: 403,
  M_EXCLUSIVE: 400,
  M_WRONG_ROOM_KEYS_VERSION: 403,
  M_NOT_YET_UPLOADED: 504,
  M_CANNOT_OVERWRITE_MEDIA: 409,
  M_THREEPID_NOT_FOUND: 400,
};

export class MatrixError extends Error {
  readonly status: number;
  constructor(
    readonly errcode: ErrCode,
    message: string,
    status?: number,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.status = status ?? DEFAULT_STATUS[errcode] ?? 400;
  }

  toJSON(): Record<string, unknown> {
    return { errcode: this.errcode, error: this.message, ...this.extra };
  }
}

export const forbidden = (msg = 'Forbidden') => new MatrixError('M_FORBIDDEN', msg);
export const notFound = (msg = 'Not found') => new MatrixError('M_NOT_FOUND', msg);
export const badJson = (msg: string) => new MatrixError('M_BAD_JSON', msg);
export const invalidParam = (msg: string) => new MatrixError('M_INVALID_PARAM', msg);
export const missingParam = (msg: string) => new MatrixError('M_MISSING_PARAM', msg);
export const unrecognized = (msg = 'Unrecognized request', status = 404) =>
  new MatrixError('M_UNRECOGNIZED', msg, status);
export const unknownToken = (msg = 'Unknown access token', softLogout = false) =>
  new MatrixError('M_UNKNOWN_TOKEN', msg, 401, softLogout ? { soft_logout: true } : {});
export const limitExceeded = (retryAfterMs: number) =>
  new MatrixError('M_LIMIT_EXCEEDED', 'Too many requests', 429, { retry_after_ms: retryAfterMs });
