/**
 * Inbound EDUs of a transaction (spec: Server-Server API, "EDUs", PUT /send/{txnId}): each is checked
 * against its type's schema and handed to that type's handler. Handlers accept only what users of the
 * sending server said (a server speaks for its own users); anything else is dropped and logged. One bad
 * EDU never fails the transaction nor stops the others.
 */
import type { Logger } from 'pino';
import type { z } from 'zod';

export interface EduHandler<T = unknown> {
  type: string;
  schema: z.ZodType<T>;
  /** Acts on one EDU from `origin`. Resolves when what must be durable before the 200 is stored. */
  handle(origin: string, content: T): Promise<void>;
}

export class EduDispatcher {
  private readonly handlers = new Map<string, EduHandler>();

  constructor(
    handlers: ReadonlyArray<EduHandler>,
    private readonly logger: Logger,
  ) {
    for (const h of handlers) this.handlers.set(h.type, h);
  }

  /** Handles a transaction's EDUs in order. */
  async dispatch(origin: string, edus: readonly unknown[]): Promise<void> {
    for (const raw of edus) {
      const type = raw && typeof raw === 'object' ? (raw as { edu_type?: unknown }).edu_type : undefined;
      const handler = typeof type === 'string' ? this.handlers.get(type) : undefined;
      if (!handler) {
        this.logger.debug({ origin, eduType: type }, 'inbound EDU of an unknown type ignored');
        continue;
      }
      const parsed = handler.schema.safeParse((raw as { content?: unknown }).content);
      if (!parsed.success) {
        this.logger.info({ origin, eduType: type, issues: parsed.error.issues.slice(0, 3) }, 'inbound EDU malformed, dropped');
        continue;
      }
      try {
        await handler.handle(origin, parsed.data);
      } catch (err) {
        this.logger.warn({ err, origin, eduType: type }, 'inbound EDU failed');
      }
    }
  }
}
