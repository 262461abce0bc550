import { z } from 'zod';
import { MatrixError } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { isRuleKind, type PushAction, type PushCondition, type RuleKind } from '../push/evaluator.js';
import { ruleToJson, rulesetToJson } from '../push/rulesService.js';

// Spec: Client-Server API, "Push Notifications" → "Push Rules: API" (/pushrules).

const action = z.union([z.string(), z.looseObject({ set_tweak: z.string() })]);
const actions = z.array(action);

const putRuleBody = z.looseObject({
  actions,
  conditions: z.array(z.looseObject({ kind: z.string() })).optional(),
  pattern: z.string().optional(),
});

const placement = z.object({ before: z.string().optional(), after: z.string().optional() });

// Synapse answers paths under /pushrules it cannot parse with 400 M_UNRECOGNIZED, and clients (SyTest) expect it.
const badPath = () => new MatrixError('M_UNRECOGNIZED', 'Unrecognized push rules path', 400);

function kindOf(params: Record<string, string>): RuleKind {
  const kind = params.kind!;
  if (!isRuleKind(kind)) throw new MatrixError('M_INVALID_PARAM', `Unknown push rule kind '${kind}'`);
  return kind;
}

export function pushRuleRoutes(services: Services): RouteDefinition[] {
  const { rules } = services.push;
  const RULE = '/pushrules/global/:kind/:ruleId';
  return [
    // Spec: GET /_matrix/client/v3/pushrules/
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/pushrules/',
      auth: 'user',
      handler: async (ctx) => {
        // `/pushrules` without the slash is no endpoint (as on Synapse).
        if (!ctx.path.endsWith('/')) throw new MatrixError('M_UNRECOGNIZED', 'Unrecognized request', 404);
        return { global: rulesetToJson(await rules.ruleset(ctx.requester.userId)) };
      },
    }),
    // Spec: GET /_matrix/client/v3/pushrules/global/
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/pushrules/global/',
      auth: 'user',
      handler: async (ctx) => {
        if (!ctx.path.endsWith('/')) throw badPath();
        return rulesetToJson(await rules.ruleset(ctx.requester.userId));
      },
    }),
    // Not in the spec; Synapse's listing of one kind (the trailing slash asks for all its rules).
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/pushrules/global/:kind/',
      auth: 'user',
      handler: async (ctx) => {
        if (!ctx.path.endsWith('/') || !isRuleKind(ctx.params.kind!)) throw badPath();
        return rulesetToJson(await rules.ruleset(ctx.requester.userId))[ctx.params.kind!];
      },
    }),
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: RULE,
      auth: 'user',
      handler: async (ctx) => {
        const kind = kindOf(ctx.params);
        return ruleToJson(kind, await rules.getRule(ctx.requester.userId, kind, ctx.params.ruleId!));
      },
    }),
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: RULE,
      auth: 'user',
      body: putRuleBody,
      query: placement,
      handler: async (ctx) => {
        const kind = kindOf(ctx.params);
        await rules.putRule(
          ctx.requester.userId,
          kind,
          ctx.params.ruleId!,
          {
            actions: ctx.body.actions as PushAction[],
            conditions: ctx.body.conditions as PushCondition[] | undefined,
            pattern: ctx.body.pattern,
          },
          { before: ctx.query.before, after: ctx.query.after },
        );
        return {};
      },
    }),
    defineRoute({
      method: 'DELETE',
      prefixes: CLIENT_V3,
      path: RULE,
      auth: 'user',
      handler: async (ctx) => {
        await rules.deleteRule(ctx.requester.userId, kindOf(ctx.params), ctx.params.ruleId!);
        return {};
      },
    }),
    // Spec: GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: `${RULE}/enabled`,
      auth: 'user',
      handler: async (ctx) => ({ enabled: (await rules.getRule(ctx.requester.userId, kindOf(ctx.params), ctx.params.ruleId!)).enabled }),
    }),
    // Spec: PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: `${RULE}/enabled`,
      auth: 'user',
      body: z.looseObject({ enabled: z.boolean() }),
      handler: async (ctx) => {
        await rules.setEnabled(ctx.requester.userId, kindOf(ctx.params), ctx.params.ruleId!, ctx.body.enabled);
        return {};
      },
    }),
    // Spec: GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: `${RULE}/actions`,
      auth: 'user',
      handler: async (ctx) => ({ actions: (await rules.getRule(ctx.requester.userId, kindOf(ctx.params), ctx.params.ruleId!)).actions }),
    }),
    // Spec: PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: `${RULE}/actions`,
      auth: 'user',
      body: z.looseObject({ actions }),
      handler: async (ctx) => {
        await rules.setActions(ctx.requester.userId, kindOf(ctx.params), ctx.params.ruleId!, ctx.body.actions as PushAction[]);
        return {};
      },
    }),
    // Anything else under /pushrules (unknown scope or attribute, a missing kind or rule id): registered last.
    ...(['GET', 'PUT', 'DELETE'] as const).map((method) =>
      defineRoute({
        method,
        prefixes: CLIENT_V3,
        path: '/pushrules{/*rest}',
        auth: 'user',
        handler: (ctx) => {
          if (ctx.path.endsWith('/pushrules')) throw new MatrixError('M_UNRECOGNIZED', 'Unrecognized request', 404);
          throw badPath();
        },
      }),
    ),
  ];
}
