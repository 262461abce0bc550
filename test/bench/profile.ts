/** Summarises a V8 .cpuprofile (from node --cpu-prof): self time per function and per source file. */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileLine {
  name: string;
  selfMs: number;
  share: number;
}

export function summarizeProfile(path: string, root: string, top = 25): { byFunction: ProfileLine[]; byFile: ProfileLine[]; totalMs: number } {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the next delta to sample i.
    const dt = deltas[i + 1] ?? 0;
    selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + Math.max(0, dt));
  }
  const clean = (url: string) => {
    const p = url.replace(/^file:\/\//, '');
    if (!p) return '';
    const rel = relative(root, p);
    return rel.startsWith('..') ? p : rel;
  };
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    total += us;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = clean(url);
    const fileKey = where
      ? where.includes('node_modules/')
        ? `node_modules/${where.split('node_modules/').pop()!.split('/').slice(0, where.split('node_modules/').pop()!.startsWith('@') ? 2 : 1).join('/')}`
        : where
      : `(${functionName || 'native'})`;
    const fnKey = `${functionName || '(anonymous)'}  ${where ? `${where}:${lineNumber + 1}` : ''}`.trim();
    fn.set(fnKey, (fn.get(fnKey) ?? 0) + us);
    file.set(fileKey, (file.get(fileKey) ?? 0) + us);
  }
  const rank = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((x, y) => y[1] - x[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: total ? us / total : 0 }));
  return { byFunction: rank(fn), byFile: rank(file), totalMs: total / 1000 };
}
