// Topological /messages tokens: `t<depth>_<stream>` marks the point just after that (depth, stream).
export interface TopologicalPoint {
  depth: number;
  stream: number;
}

export function encodePaginationToken(p: TopologicalPoint): string {
  return `t${p.depth}_${p.stream}`;
}

export function decodePaginationToken(token: string): TopologicalPoint | undefined {
  const m = /^t(-?\d+)_(-?\d+)$/.exec(token);
  return m ? { depth: Number(m[1]), stream: Number(m[2]) } : undefined;
}
