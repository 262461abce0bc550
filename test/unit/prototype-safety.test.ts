import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * Keeps hostile keys away from prototypes: a plain object literal (`{}`, `Record<…> = {}`) written with a
 * computed key (`o[k] = v`, `o[k] ??= {}`) lets `__proto__`/`constructor` reach Object.prototype. Such
 * objects must be a Map or `dict()` (Object.create(null)), or the line must say `// prototype-safe: <why>`.
 * `k in obj` with a computed `k` is refused the same way (it is true for `constructor` on any object).
 */
const ROOT = join(import.meta.dirname, '..', '..');
const WRITE_OPS = new Set([
  ts.SyntaxKind.EqualsToken,
  ts.SyntaxKind.QuestionQuestionEqualsToken,
  ts.SyntaxKind.BarBarEqualsToken,
  ts.SyntaxKind.AmpersandAmpersandEqualsToken,
  ts.SyntaxKind.PlusEqualsToken,
]);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

function unwrap(e: ts.Expression): ts.Expression {
  while (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e) || ts.isNonNullExpression(e) || ts.isTypeAssertionExpression(e)) e = e.expression;
  return e;
}

/** `a`, `a.b.c`, `this.a`, and `a[…]` as `a[]`: the name of a place an object can live in. */
function pathOf(e: ts.Expression): string | undefined {
  e = unwrap(e);
  if (ts.isIdentifier(e)) return e.text;
  if (e.kind === ts.SyntaxKind.ThisKeyword) return 'this';
  if (ts.isPropertyAccessExpression(e)) {
    const base = pathOf(e.expression);
    return base === undefined ? undefined : `${base}.${e.name.text}`;
  }
  if (ts.isElementAccessExpression(e)) {
    const base = pathOf(e.expression);
    return base === undefined ? undefined : `${base}[]`;
  }
  return undefined;
}

/** A key written by the code itself (literal), not one that can come from outside. */
function isConstantKey(k: ts.Expression): boolean {
  k = unwrap(k);
  return ts.isStringLiteral(k) || ts.isNumericLiteral(k) || ts.isNoSubstitutionTemplateLiteral(k) || (ts.isPropertyAccessExpression(k) && /^[A-Z]/.test(k.getText()));
}

export function riskyWrites(file: string, text: string): string[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  // Names are told apart by the function (or file) that declares them, so two `out`s never mix.
  const declared = new Map<ts.Node, Set<string>>();
  const scopeOf = (n: ts.Node): ts.Node => {
    let p = n.parent;
    while (p && !ts.isFunctionLike(p) && !ts.isSourceFile(p)) p = p.parent;
    return p ?? sf;
  };
  const declare = (n: ts.Node): void => {
    if ((ts.isVariableDeclaration(n) || ts.isParameter(n)) && ts.isIdentifier(n.name)) {
      const scope = ts.isParameter(n) ? n.parent : scopeOf(n);
      declared.set(scope, (declared.get(scope) ?? new Set()).add(n.name.text));
    }
    ts.forEachChild(n, declare);
  };
  declare(sf);
  const scopeIds = new Map<ts.Node, number>();
  const qualify = (path: string | undefined, at: ts.Node): string | undefined => {
    if (path === undefined) return undefined;
    const root = /^[^.[]+/.exec(path)![0];
    let scope: ts.Node | undefined = at;
    while (scope && !(declared.get(scope)?.has(root) ?? false)) scope = scope.parent;
    const id = scope ? (scopeIds.get(scope) ?? scopeIds.set(scope, scopeIds.size).size - 1) : -1;
    return `${id}:${path}`;
  };

  const plain = new Set<string>();
  // Places that hold an object literal: `const x = {…}`, `x.y = {…}`, `x[k] ??= {…}`, nested `{ y: {} }`.
  const notePlain = (path: string | undefined, init: ts.Expression | undefined): void => {
    if (path === undefined || init === undefined) return;
    let v = unwrap(init);
    // `a ?? {}`, `a || {}` and `(a[k] ??= {})` hold an object literal too.
    while (ts.isBinaryExpression(v) && (v.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken || v.operatorToken.kind === ts.SyntaxKind.BarBarToken || WRITE_OPS.has(v.operatorToken.kind))) v = unwrap(v.right);
    if (!ts.isObjectLiteralExpression(v)) return;
    plain.add(path);
    for (const p of v.properties) if (ts.isPropertyAssignment(p) && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name))) notePlain(`${path}.${p.name.text}`, p.initializer);
  };
  const collect = (n: ts.Node): void => {
    if (ts.isVariableDeclaration(n) && ts.isIdentifier(n.name)) notePlain(qualify(n.name.text, n), n.initializer);
    if (ts.isPropertyDeclaration(n) && ts.isIdentifier(n.name)) notePlain(qualify(`this.${n.name.text}`, n), n.initializer);
    if (ts.isBinaryExpression(n) && WRITE_OPS.has(n.operatorToken.kind)) notePlain(qualify(pathOf(n.left), n), n.right);
    ts.forEachChild(n, collect);
  };
  collect(sf);

  const lines = text.split('\n');
  const found = new Set<string>();
  const report = (n: ts.Node): void => {
    const line = sf.getLineAndCharacterOfPosition(n.getStart()).line;
    const marked = /\/\/ prototype-safe: \S/.test(lines[line] ?? '') || /^\s*\/\/ prototype-safe: \S/.test(lines[line - 1] ?? '');
    if (!marked) found.add(`${relative(ROOT, file)}:${line + 1}: ${(lines[line] ?? '').trim()}`);
  };
  const check = (n: ts.Node): void => {
    // `k in obj` is true for `constructor` and `toString` on every object: Object.hasOwn says what is stored.
    if (ts.isBinaryExpression(n) && n.operatorToken.kind === ts.SyntaxKind.InKeyword && !isConstantKey(n.left)) report(n);
    if (ts.isBinaryExpression(n) && WRITE_OPS.has(n.operatorToken.kind)) {
      const left = unwrap(n.left);
      if (ts.isElementAccessExpression(left) && !isConstantKey(left.argumentExpression)) {
        const target = unwrap(left.expression);
        const inline = ts.isBinaryExpression(target) && ts.isObjectLiteralExpression(unwrap(target.right));
        const path = qualify(pathOf(target), target);
        if (inline || (path !== undefined && plain.has(path))) report(left);
      }
    }
    ts.forEachChild(n, check);
  };
  check(sf);
  return [...found];
}

describe('prototype safety', () => {
  it('no plain object literal in src/ is written with a computed key, nor tested with `in`, unless marked prototype-safe', () => {
    const found = sourceFiles(join(ROOT, 'src')).flatMap((f) => riskyWrites(f, readFileSync(f, 'utf8')));
    expect(found, `Use a Map or dict() (src/util/dict.ts), or mark the line "// prototype-safe: <why>":\n${found.join('\n')}`).toEqual([]);
  });

  it.each([
    ['const o: Record<string, number> = {};\no[k] = 1;', 1],
    ['const o = {};\no[k] ??= {};', 1],
    ['const out = { failures: {} };\nout.failures[k] = 1;', 1],
    ['const o = {};\n(o[a] ??= {})[b] = 1;', 1],
    ['const o = {};\no[a] ??= {};\no[a][b] = 1;', 2],
    ['const o = m.get(s) ?? {};\no[k] = 1;', 1],
    ['const o = {};\nconst inner = (o[a] ??= {});\ninner[b] = 1;', 2],
    ['const o = dict();\no[k] = 1;', 0],
    ['const o = new Map();\no[k] = 1;', 0],
    ['const o = {};\no["literal"] = 1;', 0],
    ['const a = [];\na[i] = 1;', 0],
    ['function f() { const o = {}; }\nfunction g(o) { o[k] = 1; }', 0],
    ['const o = {};\nfunction g() { o[k] = 1; }', 1],
    ['if (k in o) f();', 1],
    ['if ("a" in o) f();', 0],
    ['for (const k in o) f(k);', 0],
    ['const o = {};\no[k] = 1; // prototype-safe: k is one of RULE_KINDS', 0],
  ])('finds the risky writes in %j', (source, count) => {
    expect(riskyWrites(join(ROOT, 'src/x.ts'), source)).toHaveLength(count);
  });
});
