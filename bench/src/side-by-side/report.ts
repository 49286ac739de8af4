/** results[stack][measure][system] = one value per run */
export type Results = Record<string, Record<string, Record<string, number[]>>>;
/** cpu[stack][measure][system][role] = CPU ms the role's process spent while the figure was measured, one per run */
export type Cpu = Record<string, Record<string, Record<string, Record<string, number[]>>>>;

export interface ReportInput {
  date: string;
  machine: string;
  runs: number;
  commit: string;
  /** Each stack with the peers strata is compared with on it (the kernel first), the strata systems run, how many entries each system's walk found, and the load averages around it. */
  stacks: { name: string; files: number; peers: string[]; strata: string[]; entries: Record<string, number>; load?: { before: string; after: string; low: number; high: number } }[];
  results: Results;
  /** memory[stack][process] = peak resident bytes */
  memory: Record<string, Record<string, number>>;
  cpu: Cpu;
  /** calls[stack][measure][system][method] = resolver calls of that method while the figure was measured (optional). */
  calls?: Cpu;
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
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

const VIEW = 'strata (store view)';

/**
 * Issue 28's targets, each a figure over the kernel's (strata's value ÷ the
 * kernel's: time for times, throughput for throughputs), or for the path
 * without a store view an absolute bound where the issue sets one.
 */
interface Target {
  measure: string;
  /** The kernel's figure the ratio is taken over (default the same measure). */
  kernelMeasure?: string;
  /** The bound for `system`: a ratio to the kernel, or MB/s. */
  bound(system: string): { ratio: number } | { atLeast: number; unit: string };
}

const TARGETS: Target[] = [
  { measure: 'cold walk (ms)', bound: () => ({ ratio: 1.5 }) },
  { measure: 'cold walk, second host (ms)', kernelMeasure: 'cold walk (ms)', bound: () => ({ ratio: 1.2 }) },
  { measure: 'cold full read (ms)', bound: (s) => ({ ratio: s === VIEW ? 2 : 3 }) },
  { measure: '1 GiB sequential read, cold (MB/s)', bound: (s) => (s === VIEW ? { ratio: 0.8 } : { atLeast: 400, unit: 'MB/s' }) },
  { measure: 'random 4 KiB reads, cold (IOPS)', bound: () => ({ ratio: 0.5 }) },
  { measure: 'warm full read (ms)', bound: () => ({ ratio: 1.5 }) },
];

function boundText(b: { ratio: number } | { atLeast: number; unit: string }, higher: boolean): string {
  return 'ratio' in b ? `${higher ? '≥' : '≤'} ${b.ratio}×` : `≥ ${b.atLeast} ${b.unit}`;
}

/** One strata system's figure against a target: "value (ratio×) met|NOT met", or undefined when either figure is missing. */
function judged(t: Target, system: string, measures: Results[string], kernel: string): string | undefined {
  const mine = measures[t.measure]?.[system];
  const theirs = measures[t.kernelMeasure ?? t.measure]?.[kernel];
  if (!mine || !theirs) return undefined;
  const value = median(mine);
  const ratio = value / median(theirs);
  const higher = higherIsBetter(t.measure);
  const b = t.bound(system);
  const met = 'ratio' in b ? (higher ? ratio >= b.ratio : ratio <= b.ratio) : value >= b.atLeast;
  return `${cell(value)} (${ratio.toFixed(2)}×; ${boundText(b, higher)}) ${met ? 'met' : '**not met**'}`;
}

function targetsTable(stack: ReportInput['stacks'][number], measures: Results[string]): string[] {
  const kernel = stack.peers.find((p) => p.startsWith('kernel'));
  if (!kernel || !measures) return [];
  const rows: string[] = [];
  for (const t of TARGETS) {
    const cells = stack.strata.map((s) => judged(t, s, measures, kernel));
    if (cells.every((c) => c === undefined)) continue;
    rows.push(`| ${t.measure} | ${cell(median(measures[t.kernelMeasure ?? t.measure]?.[kernel] ?? [NaN]))} | ${cells.map((c) => c ?? '-').join(' | ')} |`);
  }
  if (rows.length === 0) return [];
  return [
    '',
    `Issue 28's targets: strata's figure ÷ ${kernel}'s in one run (for times below 1 is faster, for throughputs above 1 is faster), and the target:`,
    '',
    `| figure | ${kernel} | ${stack.strata.join(' | ')} |`,
    `| --- | ---: | ${stack.strata.map(() => '---:').join(' | ')} |`,
    ...rows,
  ];
}

/** CPU seconds agent and resolver spent while each cold figure was measured: the wall time above, split by who worked. */
function cpuTable(stack: ReportInput['stacks'][number], cpu: Cpu[string] | undefined): string[] {
  if (!cpu) return [];
  const cols = stack.strata.flatMap((s) => ['agent', 'resolver'].map((role) => [s, role] as const));
  const rows = Object.entries(cpu).map(([measure, bySystem]) => `| ${measure} | ${cols.map(([s, role]) => (bySystem[s]?.[role] ? (median(bySystem[s][role]) / 1000).toFixed(1) : '-')).join(' | ')} |`);
  return ['', 'CPU seconds (user + system, all threads) of the serving processes while each cold figure was measured:', '', `| measure | ${cols.map(([s, role]) => `${s.replace('strata ', '')} ${role}`).join(' | ')} |`, `| --- | ${cols.map(() => '---:').join(' | ')} |`, ...rows];
}

/** The calls the resolver answered during each cold figure, by method: whether bytes went through it (Session reads) or around it (extent maps). */
function callsTable(stack: ReportInput['stacks'][number], calls: Cpu[string] | undefined): string[] {
  if (!calls) return [];
  const text = (byMethod: Record<string, number[]> | undefined): string => {
    const made = Object.entries(byMethod ?? {})
      .map(([method, n]) => [method, Math.round(median(n))] as const)
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1]);
    return made.length ? made.map(([method, n]) => `${method} ${n.toLocaleString('en-US')}`).join(', ') : '-';
  };
  const rows = Object.entries(calls).map(([measure, bySystem]) => `| ${measure} | ${stack.strata.map((s) => text(bySystem[s])).join(' | ')} |`);
  return ['', 'Resolver calls while each cold figure was measured:', '', `| measure | ${stack.strata.join(' | ')} |`, `| --- | ${stack.strata.map(() => '---').join(' | ')} |`, ...rows];
}

export function renderReport(r: ReportInput): string {
  const out: string[] = [];
  out.push('## Side by side (`npm run bench`)', '');
  out.push(
    `${r.date}, ${r.machine}, commit ${r.commit}. Medians of ${r.runs} runs. Cold: page cache dropped, every serving process restarted (and Redis emptied); warm: the same mount again.`,
    '',
  );
  for (const stack of r.stacks) {
    const measures = r.results[stack.name] ?? {};
    out.push(`### ${stack.name} (${stack.files} files)`, '');
    if (stack.load) out.push(`Load average (1, 5, 15 min) before: ${stack.load.before}; after: ${stack.load.after}; 1-minute load at the figures ${stack.load.low.toFixed(1)}–${stack.load.high.toFixed(1)} (2 cores, shared).`, '');
    const systems = [...stack.peers, ...stack.strata];
    out.push(`| measure | ${systems.join(' | ')} |`, `| --- | ${systems.map(() => '---:').join(' | ')} |`);
    for (const [measure, bySystem] of Object.entries(measures)) {
      out.push(`| ${measure} | ${systems.map((s) => cell(bySystem[s] ? median(bySystem[s]) : undefined)).join(' | ')} |`);
    }
    out.push('', 'strata ÷ peer (times as long; below 1 is faster):', '');
    const cols = stack.strata.flatMap((s) => stack.peers.map((p) => [s, p] as const));
    out.push(`| measure | ${cols.map(([s, p]) => `${s.replace('strata ', '')} ÷ ${p.split(' ')[0]}`).join(' | ')} |`, `| --- | ${cols.map(() => '---:').join(' | ')} |`);
    for (const [measure, bySystem] of Object.entries(measures)) {
      const row = cols.map(([s, p]) => (bySystem[s] && bySystem[p] ? `${slowdown(measure, median(bySystem[s]), median(bySystem[p])).toFixed(2)}×` : '-'));
      if (row.some((c) => c !== '-')) out.push(`| ${measure} | ${row.join(' | ')} |`);
    }
    out.push(...targetsTable(stack, measures));
    out.push(...cpuTable(stack, r.cpu[stack.name]));
    out.push(...callsTable(stack, r.calls?.[stack.name]));
    const first = measures['cold walk, first host (ms)']?.['strata (Redis)'];
    const second = measures['cold walk, second host (ms)']?.['strata (Redis)'];
    if (first && second) out.push('', `Second host after the first warmed Redis: cold walk ${(median(first) / median(second)).toFixed(2)}× faster than the first host's.`);
    const counts = new Set(Object.values(stack.entries));
    if (counts.size > 1) out.push('', `**The systems walked different trees**: ${Object.entries(stack.entries).map(([s, n]) => `${s} ${n}`).join(', ')} entries.`);
    const memory = r.memory[stack.name];
    if (memory && Object.keys(memory).length > 0) {
      out.push('', 'Peak memory (VmHWM, the highest of every start):', '', '| process | MiB |', '| --- | ---: |');
      for (const [k, v] of Object.entries(memory)) out.push(`| ${k} | ${(v / 2 ** 20).toFixed(0)} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

/** The VM-image variants compared with `vm-image` (ext4 in qcow2), and the systems each is compared on. */
const VARIANTS: { stack: string; label: string; systems: [string, string][] }[] = [
  { stack: 'vm-image-vmdk', label: 'VMDK', systems: [['strata (in-process)', 'strata (in-process)'], ['strata (store view)', 'strata (store view)'], ['strata (Redis)', 'strata (Redis)'], ['qsd + fuse2fs', 'qsd + fuse2fs'], ['kernel ext4 (loop)', 'kernel ext4 (loop)']] },
  { stack: 'vm-image-vhdx', label: 'VHDX', systems: [['strata (in-process)', 'strata (in-process)'], ['strata (store view)', 'strata (store view)'], ['strata (Redis)', 'strata (Redis)'], ['qsd + fuse2fs', 'qsd + fuse2fs'], ['kernel ext4 (loop)', 'kernel ext4 (loop)']] },
  { stack: 'vm-image-xfs', label: 'XFS', systems: [['strata (in-process)', 'strata (in-process)'], ['strata (store view)', 'strata (store view)'], ['strata (Redis)', 'strata (Redis)'], ['kernel xfs (loop)', 'kernel ext4 (loop)']] },
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
