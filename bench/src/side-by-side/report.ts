/** results[stack][measure][system] = one value per run */
export type Results = Record<string, Record<string, Record<string, number[]>>>;

export interface ReportInput {
  date: string;
  machine: string;
  runs: number;
  /** Each stack with the peers strata is compared with on it, and how many entries each system's walk found. */
  stacks: { name: string; files: number; peers: string[]; entries: Record<string, number> }[];
  results: Results;
  memory: Record<string, Record<string, number>>;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const higherIsBetter = (measure: string): boolean => /MB\/s|IOPS/.test(measure);

/** How many times longer strata takes than `other` (throughputs inverted so > 1 always means slower). */
function slowdown(measure: string, strata: number, other: number): number {
  return higherIsBetter(measure) ? other / strata : strata / other;
}

function cell(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  return n >= 100 ? Math.round(n).toString() : n.toFixed(1);
}

const STRATA = ['strata (in-process)', 'strata (Redis)'];

export function renderReport(r: ReportInput): string {
  const out: string[] = [];
  out.push('## Side by side (`npm run bench`)', '');
  out.push(`${r.date}, ${r.machine}. Medians of ${r.runs} runs. Cold: page cache dropped, every serving process restarted (and Redis emptied); warm: the same mount again.`, '');
  for (const stack of r.stacks) {
    const measures = r.results[stack.name] ?? {};
    out.push(`### ${stack.name} (${stack.files} files)`, '');
    const systems = [...stack.peers, ...STRATA];
    out.push(`| measure | ${systems.join(' | ')} |`, `| --- | ${systems.map(() => '---:').join(' | ')} |`);
    for (const [measure, bySystem] of Object.entries(measures)) {
      out.push(`| ${measure} | ${systems.map((s) => cell(bySystem[s] ? median(bySystem[s]) : undefined)).join(' | ')} |`);
    }
    out.push('', 'strata ÷ peer (times as long; below 1 is faster):', '');
    const cols = STRATA.flatMap((s) => stack.peers.map((p) => [s, p] as const));
    out.push(`| measure | ${cols.map(([s, p]) => `${s.replace('strata ', '')} ÷ ${p.split(' ')[0]}`).join(' | ')} |`, `| --- | ${cols.map(() => '---:').join(' | ')} |`);
    for (const [measure, bySystem] of Object.entries(measures)) {
      const row = cols.map(([s, p]) => (bySystem[s] && bySystem[p] ? `${slowdown(measure, median(bySystem[s]), median(bySystem[p])).toFixed(2)}×` : '-'));
      if (row.some((c) => c !== '-')) out.push(`| ${measure} | ${row.join(' | ')} |`);
    }
    const first = measures['cold walk, first host (ms)']?.['strata (Redis)'];
    const second = measures['cold walk, second host (ms)']?.['strata (Redis)'];
    if (first && second) out.push('', `Second host after the first warmed Redis: cold walk ${(median(first) / median(second)).toFixed(2)}× faster than the first host's.`);
    const counts = new Set(Object.values(stack.entries));
    if (counts.size > 1) out.push('', `**The systems walked different trees**: ${Object.entries(stack.entries).map(([s, n]) => `${s} ${n}`).join(', ')} entries.`);
    out.push('');
  }
  out.push('### Peak memory (VmHWM)', '', '| process | MiB |', '| --- | ---: |');
  for (const [k, v] of Object.entries(r.memory)) out.push(`| ${k} | ${(v.peak / 2 ** 20).toFixed(0)} |`);
  return out.join('\n');
}

/** The VM-image variants compared with `vm-image` (ext4 in qcow2), and the systems each is compared on. */
const VARIANTS: { stack: string; label: string; systems: [string, string][] }[] = [
  { stack: 'vm-image-vmdk', label: 'VMDK', systems: [['strata (in-process)', 'strata (in-process)'], ['strata (Redis)', 'strata (Redis)'], ['qsd + fuse2fs', 'qsd + fuse2fs'], ['kernel ext4 (loop)', 'kernel ext4 (loop)']] },
  { stack: 'vm-image-vhdx', label: 'VHDX', systems: [['strata (in-process)', 'strata (in-process)'], ['strata (Redis)', 'strata (Redis)'], ['qsd + fuse2fs', 'qsd + fuse2fs'], ['kernel ext4 (loop)', 'kernel ext4 (loop)']] },
  { stack: 'vm-image-xfs', label: 'XFS', systems: [['strata (in-process)', 'strata (in-process)'], ['strata (Redis)', 'strata (Redis)'], ['kernel xfs (loop)', 'kernel ext4 (loop)']] },
];

/**
 * Each variant's figure over vm-image's, system by system (times as long;
 * throughputs inverted): what the disk format or the guest's filesystem
 * costs. The kernel's VMDK and VHDX columns read the very same flattened
 * disk as on vm-image, so they show the run-to-run noise.
 */
export function renderVariants(results: Results): string | undefined {
  const base = results['vm-image'];
  const present = VARIANTS.filter((v) => results[v.stack]);
  if (!base || present.length === 0) return undefined;
  const out = ['### Guests and disk formats against vm-image', '', "Each variant's figure ÷ vm-image's on the same system (times as long; below 1 is faster):"];
  for (const v of present) {
    const title = (sys: string, ref: string): string => (sys === ref ? sys : `${sys} ÷ ${ref}`);
    out.push('', `${v.label} (${v.stack}):`, '', `| measure | ${v.systems.map(([sys, ref]) => title(sys, ref)).join(' | ')} |`, `| --- | ${v.systems.map(() => '---:').join(' | ')} |`);
    for (const measure of Object.keys(base)) {
      const row = v.systems.map(([sys, ref]) => {
        const mine = results[v.stack]?.[measure]?.[sys];
        const theirs = base[measure]?.[ref];
        return mine && theirs ? `${slowdown(measure, median(mine), median(theirs)).toFixed(2)}×` : '-';
      });
      if (row.some((x) => x !== '-')) out.push(`| ${measure} | ${row.join(' | ')} |`);
    }
  }
  return out.join('\n');
}
