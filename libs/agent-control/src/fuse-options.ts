/**
 * The kernel side of a strata mount: the libfuse options the agent mounts
 * with. Kept here, beside the control protocol, so that whatever mounts "the
 * same way as strata" (the benchmark's passthrough floor) uses this one list
 * without depending on the agent.
 */

/** libfuse options of one mount; seconds for the kernel timeouts. */
export interface KernelOptions {
  fsname: string;
  /** The fstype shows as fuse.<subtype>; "strata" unless another server borrows these options. */
  subtype?: string;
  /** Kernel entry, attribute and negative-lookup cache lifetime. */
  timeoutSeconds: number;
  /** Keep file pages in the kernel across opens (sealed layers only). */
  keepPageCache: boolean;
  noExec: boolean;
  noSuid: boolean;
  noDev: boolean;
  /** Largest readahead the kernel may ask for, in bytes. */
  maxReadahead: number;
}

/** Characters that would split or escape an option in libfuse's comma-separated list. */
function optionValue(s: string): string {
  return s.replace(/[,\\]/g, '_');
}

/**
 * Builds the libfuse "-o" list. fuse-native maps only some options (no ro,
 * use_ino, negative_timeout), so the whole list is written here.
 */
export function fuseOptionList(o: KernelOptions): string[] {
  const t = String(o.timeoutSeconds);
  return [
    'ro',
    'default_permissions',
    'allow_other',
    'use_ino',
    `fsname=${optionValue(o.fsname)}`,
    `subtype=${optionValue(o.subtype ?? 'strata')}`,
    `entry_timeout=${t}`,
    `attr_timeout=${t}`,
    `negative_timeout=${t}`,
    // libfuse mounts nosuid,nodev unless told otherwise; the layer decides.
    o.noExec ? 'noexec' : 'exec',
    o.noSuid ? 'nosuid' : 'suid',
    o.noDev ? 'nodev' : 'dev',
    o.keepPageCache ? 'kernel_cache' : 'auto_cache',
    `max_readahead=${o.maxReadahead}`,
  ];
}
