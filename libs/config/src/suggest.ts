/** Keys longer than this are never compared letter by letter (the work is quadratic). */
const MAX_COMPARED = 64;

/** Edit distance (insert, delete, substitute, swap two neighbours). */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[i].push(j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2][j - 2] + 1);
      rows[i].push(d);
    }
  }
  return rows[a.length][b.length];
}

/** `cacheMb`, `cache_mb`, `CACHE-MB` → `cache-mb`. */
function normalise(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/[_\s]+/g, '-')
    .replace(/^-+/, '')
    .toLowerCase();
}

/**
 * The known key someone probably meant: the same key in another spelling
 * (camelCase, snake_case, a leading `--`), else the nearest by edit distance
 * when it is close enough to be a typo.
 */
export function closest(unknown: string, known: readonly string[]): string | undefined {
  const n = normalise(unknown);
  if (known.includes(n)) return n;
  if (n.length > MAX_COMPARED) return undefined;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(n, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  const limit = Math.max(1, Math.min(3, Math.floor(n.length / 3)));
  return bestDistance <= limit ? best : undefined;
}
