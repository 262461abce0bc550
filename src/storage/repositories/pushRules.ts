import type { Db } from '../database.js';

/** A stored push rule row: a user-defined rule, or a user's change to a server-default rule. */
export interface PushRuleRow {
  kind: string;
  ruleId: string;
  isDefault: boolean;
  position: number;
  pattern: string | null;
  conditions: unknown[] | null;
  actions: unknown[] | null;
  enabled: boolean | null;
}

interface Row {
  kind: string;
  rule_id: string;
  is_default: boolean | number;
  position: number | string;
  pattern: string | null;
  conditions_json: string | null;
  actions_json: string | null;
  enabled: boolean | number | null;
}

const toRow = (r: Row): PushRuleRow => ({
  kind: r.kind,
  ruleId: r.rule_id,
  isDefault: Boolean(r.is_default),
  position: Number(r.position),
  pattern: r.pattern,
  conditions: r.conditions_json === null ? null : (JSON.parse(r.conditions_json) as unknown[]),
  actions: r.actions_json === null ? null : (JSON.parse(r.actions_json) as unknown[]),
  enabled: r.enabled === null ? null : Boolean(r.enabled),
});

/** Every row of a user, user-defined rules in priority order within their kind. */
export async function listPushRules(db: Db, userId: string): Promise<PushRuleRow[]> {
  const rows: Row[] = await db('push_rules').where('user_id', userId).orderBy([{ column: 'kind' }, { column: 'position' }, { column: 'rule_id' }]);
  return rows.map(toRow);
}

export async function getPushRuleRow(db: Db, userId: string, kind: string, ruleId: string): Promise<PushRuleRow | undefined> {
  const row: Row | undefined = await db('push_rules').where({ user_id: userId, kind, rule_id: ruleId }).first();
  return row ? toRow(row) : undefined;
}

/** Inserts or replaces a user-defined rule (enabled is kept on update unless given). */
export async function upsertUserRule(
  db: Db,
  userId: string,
  rule: { kind: string; ruleId: string; position: number; pattern: string | null; conditions: unknown[] | null; actions: unknown[]; enabled?: boolean },
): Promise<void> {
  const values = {
    user_id: userId,
    kind: rule.kind,
    rule_id: rule.ruleId,
    is_default: false,
    position: rule.position,
    pattern: rule.pattern,
    conditions_json: rule.conditions === null ? null : JSON.stringify(rule.conditions),
    actions_json: JSON.stringify(rule.actions),
    enabled: rule.enabled ?? true,
  };
  const merge: Record<string, unknown> = { ...values };
  delete merge.user_id;
  delete merge.kind;
  delete merge.rule_id;
  if (rule.enabled === undefined) delete merge.enabled;
  await db('push_rules').insert(values).onConflict(['user_id', 'kind', 'rule_id']).merge(merge);
}

/** Renumbers a user's rules of one kind in the given order. */
export async function setPositions(db: Db, userId: string, kind: string, orderedRuleIds: readonly string[]): Promise<void> {
  for (let i = 0; i < orderedRuleIds.length; i++) {
    await db('push_rules').where({ user_id: userId, kind, rule_id: orderedRuleIds[i]!, is_default: false }).update({ position: i });
  }
}

export async function deletePushRuleRow(db: Db, userId: string, kind: string, ruleId: string): Promise<boolean> {
  return (await db('push_rules').where({ user_id: userId, kind, rule_id: ruleId }).delete()) > 0;
}

/** Sets `enabled` or `actions` of a rule; for server-default rules the row is created on first change. */
export async function setRuleAttribute(
  db: Db,
  userId: string,
  kind: string,
  ruleId: string,
  isDefault: boolean,
  change: { enabled: boolean } | { actions: unknown[] },
): Promise<void> {
  const column = 'enabled' in change ? { enabled: change.enabled } : { actions_json: JSON.stringify(change.actions) };
  if (!isDefault) {
    await db('push_rules').where({ user_id: userId, kind, rule_id: ruleId }).update(column);
    return;
  }
  await db('push_rules')
    .insert({ user_id: userId, kind, rule_id: ruleId, is_default: true, position: 0, pattern: null, conditions_json: null, actions_json: null, enabled: null, ...column })
    .onConflict(['user_id', 'kind', 'rule_id'])
    .merge(column);
}
