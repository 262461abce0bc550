/**
 * A string-keyed object without a prototype, for keys that come from outside (user ids, device ids,
 * event types …): `__proto__`, `constructor` and `toString` are then ordinary keys and never reach
 * Object.prototype. JSON.stringify serialises it like any object.
 */
export function dict<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** The own value under `key`, never one inherited from Object.prototype (`constructor`, `toString` …). */
export function own<T>(obj: Record<string, T> | undefined | null, key: string): T | undefined {
  return obj != null && Object.hasOwn(obj, key) ? obj[key] : undefined;
}
