import type { Logger } from 'pino';
import { MatrixError, notFound } from '../errors.js';
import type { Database } from '../storage/database.js';
import * as repo from '../storage/repositories/pushRules.js';
import type { AccountDataService } from '../sync/accountDataService.js';
import { LruCache } from '../util/lru.js';
import {
  RULE_KINDS,
  defaultRuleset,
  mergeRulesets,
  type DefaultRulesOptions,
  type PushAction,
  type PushCondition,
  type PushRule,
  type RuleKind,
  type Ruleset,
} from './evaluator.js';

export interface PushRulesDeps {
  db: Database;
  logger: Logger;
  accountData: AccountDataService;
}

export interface PutRuleBody {
  actions: PushAction[];
  conditions?: PushCondition[] | undefined;
  pattern?: string | undefined;
}

/** The wire form of a rule: content rules carry `pattern`, override/underride rules `conditions`. */
export function ruleToJson(kind: RuleKind, r: PushRule): Record<string, unknown> {
  const out: Record<string, unknown> = { rule_id: r.rule_id, default: r.default, enabled: r.enabled, actions: r.actions };
  if (kind === 'content' && r.pattern !== undefined) out.pattern = r.pattern;
  if ((kind === 'override' || kind === 'underride') && r.conditions !== undefined) out.conditions = r.conditions;
  return out;
}

export function rulesetToJson(ruleset: Ruleset): Record<RuleKind, Array<Record<string, unknown>>> {
  const out = {} as Record<RuleKind, Array<Record<string, unknown>>>;
  // prototype-safe: kind is one of RULE_KINDS
  for (const kind of RULE_KINDS) out[kind] = ruleset[kind].map((r) => ruleToJson(kind, r));
  return out;
}

const invalid = (msg: string) => new MatrixError('M_INVALID_PARAM', msg);

function isScalar(v: unknown): boolean {
  return v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isInteger(v));
}

const KNOWN_ACTIONS = new Set(['notify', 'dont_notify', 'coalesce']);

/** Spec: "Actions" — strings, or `{ set_tweak, value }` with a string sound and a boolean highlight. */
export function validateActions(actions: readonly unknown[]): void {
  for (const a of actions) {
    if (typeof a === 'string') {
      // dont_notify and coalesce are deprecated no-ops the spec still lists; Synapse refuses any other string.
      if (!KNOWN_ACTIONS.has(a)) throw invalid(`Unknown action '${a}'`);
      continue;
    }
    if (a === null || typeof a !== 'object' || Array.isArray(a)) throw invalid('Each action must be a string or an object');
    const tweak = (a as Record<string, unknown>).set_tweak;
    if (typeof tweak !== 'string') throw invalid('An object action needs a string set_tweak');
    const value = (a as Record<string, unknown>).value;
    if (tweak === 'highlight' && value !== undefined && typeof value !== 'boolean') throw invalid('The highlight tweak takes a boolean');
    if (tweak === 'sound' && typeof value !== 'string') throw invalid('The sound tweak takes a string');
  }
}

/** Known condition kinds must carry their fields; unknown kinds are kept (they never match). */
export function validateConditions(conditions: readonly unknown[]): void {
  for (const c of conditions) {
    if (c === null || typeof c !== 'object' || Array.isArray(c)) throw invalid('Each condition must be an object');
    const cond = c as Record<string, unknown>;
    if (typeof cond.kind !== 'string') throw invalid('Each condition needs a string kind');
    const needKey = () => {
      if (typeof cond.key !== 'string') throw invalid(`Condition ${cond.kind} needs a string key`);
    };
    switch (cond.kind) {
      case 'event_match':
        needKey();
        if (typeof cond.pattern !== 'string') throw invalid('Condition event_match needs a string pattern');
        break;
      case 'event_property_is':
      case 'event_property_contains':
        needKey();
        if (!isScalar(cond.value)) throw invalid(`Condition ${cond.kind} needs a string, integer, boolean or null value`);
        break;
      case 'room_member_count':
        if (typeof cond.is !== 'string' || !/^(==|<=|>=|<|>)?[0-9]+$/.test(cond.is)) throw invalid('Condition room_member_count needs is: "[op]N"');
        break;
      case 'sender_notification_permission':
        needKey();
        break;
      default:
        break;
    }
  }
}

/** Push rules of each user: server defaults, the user's changes to them and the user's own rules. */
export class PushRulesService {
  private readonly cache = new LruCache<string, Ruleset>(10_000);
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly deps: PushRulesDeps,
    private readonly options: DefaultRulesOptions = {},
  ) {}

  private get db() {
    return this.deps.db.knex;
  }

  /** The user's full ruleset in evaluation order (cached; callers must not change it). */
  async ruleset(userId: string): Promise<Ruleset> {
    const hit = this.cache.get(userId);
    if (hit) return hit;
    const rows = await repo.listPushRules(this.db, userId);
    const defaults = defaultRuleset(userId, this.options);
    const user: Ruleset = { override: [], content: [], room: [], sender: [], underride: [] };
    for (const row of rows) {
      if (!(RULE_KINDS as readonly string[]).includes(row.kind)) continue;
      const kind = row.kind as RuleKind;
      if (row.isDefault) {
        const target = defaults[kind].find((r) => r.rule_id === row.ruleId);
        if (!target) continue;
        if (row.enabled !== null) target.enabled = row.enabled;
        if (row.actions !== null) target.actions = row.actions as PushAction[];
        continue;
      }
      const rule: PushRule = { rule_id: row.ruleId, default: false, enabled: row.enabled ?? true, actions: (row.actions ?? []) as PushAction[] };
      if (kind === 'content') rule.pattern = row.pattern ?? '';
      if (kind === 'override' || kind === 'underride') rule.conditions = (row.conditions ?? []) as PushCondition[];
      user[kind].push(rule);
    }
    const merged = mergeRulesets(defaults, user);
    this.cache.set(userId, merged);
    return merged;
  }

  async getRule(userId: string, kind: RuleKind, ruleId: string): Promise<PushRule> {
    const rule = (await this.ruleset(userId))[kind].find((r) => r.rule_id === ruleId);
    if (!rule) throw notFound('The push rule was not found.');
    return rule;
  }

  /** PUT /pushrules/global/{kind}/{ruleId} (spec: "setPushRule"). */
  async putRule(userId: string, kind: RuleKind, ruleId: string, body: PutRuleBody, where: { before?: string | undefined; after?: string | undefined }): Promise<void> {
    if (ruleId.length === 0) throw invalid('The rule id must not be empty');
    if (ruleId.startsWith('.')) throw invalid('Rule ids starting with "." are reserved for server-default rules');
    if (/[/\\]/.test(ruleId)) throw invalid('Rule ids must not contain slashes or backslashes');
    if (kind === 'sender' && !/^@[^:]+:.+$/.test(ruleId)) throw invalid('The rule id of a sender rule is a user id');
    validateActions(body.actions);
    let pattern: string | null = null;
    let conditions: PushCondition[] | null = null;
    if (kind === 'content') {
      if (typeof body.pattern !== 'string') throw new MatrixError('M_MISSING_PARAM', 'Content rules need a pattern');
      pattern = body.pattern;
    }
    if (kind === 'override' || kind === 'underride') {
      conditions = body.conditions ?? [];
      validateConditions(conditions);
    }
    for (const anchor of [where.before, where.after]) {
      if (anchor !== undefined && anchor.startsWith('.')) throw invalid('A rule cannot be placed relative to a server-default rule');
    }

    await this.serialised(userId, async () => {
      await this.deps.db.write(async (trx) => {
        const rows = (await repo.listPushRules(trx, userId)).filter((r) => r.kind === kind && !r.isDefault);
        const order = rows.map((r) => r.ruleId);
        const existing = order.indexOf(ruleId);
        const anchor = where.before ?? where.after;
        if (anchor !== undefined && (anchor === ruleId || !order.includes(anchor))) {
          // The spec's own example answer for this case.
          throw new MatrixError('M_UNKNOWN', `before/after rule not found: ${anchor}`, 400);
        }
        const positioned = anchor !== undefined || existing === -1;
        if (positioned) {
          if (existing !== -1) order.splice(existing, 1);
          // `before` wins when both are given (spec: next most important with respect to `before`).
          if (where.before !== undefined) order.splice(order.indexOf(where.before), 0, ruleId);
          else if (where.after !== undefined) order.splice(order.indexOf(where.after) + 1, 0, ruleId);
          else order.unshift(ruleId);
        }
        await repo.upsertUserRule(trx, userId, {
          kind,
          ruleId,
          position: order.indexOf(ruleId),
          pattern,
          conditions,
          actions: body.actions,
          ...(existing === -1 ? { enabled: true } : {}),
        });
        if (positioned) await repo.setPositions(trx, userId, kind, order);
      });
    });
    await this.changed(userId);
  }

  async deleteRule(userId: string, kind: RuleKind, ruleId: string): Promise<void> {
    const rule = await this.getRule(userId, kind, ruleId);
    if (rule.default) throw invalid('Server-default rules cannot be deleted; disable them instead');
    await this.serialised(userId, async () => {
      if (!(await repo.deletePushRuleRow(this.db, userId, kind, ruleId))) throw notFound('The push rule was not found.');
    });
    await this.changed(userId);
  }

  async setEnabled(userId: string, kind: RuleKind, ruleId: string, enabled: boolean): Promise<void> {
    const rule = await this.getRule(userId, kind, ruleId);
    await this.serialised(userId, () => repo.setRuleAttribute(this.db, userId, kind, ruleId, rule.default, { enabled }));
    await this.changed(userId);
  }

  async setActions(userId: string, kind: RuleKind, ruleId: string, actions: PushAction[]): Promise<void> {
    validateActions(actions);
    const rule = await this.getRule(userId, kind, ruleId);
    await this.serialised(userId, () => repo.setRuleAttribute(this.db, userId, kind, ruleId, rule.default, { actions }));
    await this.changed(userId);
  }

  /** The `m.push_rules` account data content for the user. */
  async accountDataContent(userId: string): Promise<Record<string, unknown>> {
    return { global: rulesetToJson(await this.ruleset(userId)) };
  }

  /** Rules changed: forget the cached set and publish the new one as `m.push_rules` account data (spec). */
  private async changed(userId: string): Promise<void> {
    this.cache.delete(userId);
    try {
      await this.deps.accountData.put(userId, '', 'm.push_rules', await this.accountDataContent(userId));
    } catch (err) {
      // The rules table is the source of truth; the next change publishes again.
      this.deps.logger.error({ err, userId }, 'publishing m.push_rules account data failed');
    }
  }

  /** One change at a time per user, so positions never interleave. */
  private serialised<T>(userId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(userId) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(userId, tail);
    void tail.then(() => {
      if (this.locks.get(userId) === tail) this.locks.delete(userId);
    });
    return run;
  }
}
