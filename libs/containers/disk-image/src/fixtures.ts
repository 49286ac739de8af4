// Helpers for this package's tests: fixtures are made at test time with the
// standard tools (qemu-img, qemu-io, sfdisk), never committed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { StrataError } from '@strata/errors';
import type { ByteSource } from './byte-source';

export function run(cmd: string, args: readonly string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export function qemuImg(...args: string[]): string {
  return run('qemu-img', args);
}

/** Runs qemu-io commands (e.g. 'write -P 0xab 0 64k') against a qcow2 image. */
export function qemuIo(file: string, ...commands: string[]): void {
  const out = run('qemu-io', ['-f', 'qcow2', ...commands.flatMap((c) => ['-c', c]), file]);
  assert.doesNotMatch(out, /error|failed/i, `qemu-io ${commands.join('; ')}: ${out}`);
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), `strata-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** What qemu itself reads from the image: `qemu-img convert -O raw`. */
export function qemuTruth(image: string, scratchDir: string): Buffer {
  const out = path.join(scratchDir, `${path.basename(image)}.truth.raw`);
  qemuImg('convert', '-O', 'raw', image, out);
  const bytes = readFileSync(out);
  rmSync(out);
  return bytes;
}

/** A small deterministic PRNG (mulberry32): fuzz and random ranges repeat for a given seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Compares a source with the truth: the whole disk, then `count` seeded
 * ranges that start just before a cluster boundary and cross one or more.
 */
export async function assertSameBytes(source: ByteSource, truth: Buffer, clusterSize: number, seed = 1, count = 40): Promise<void> {
  assert.equal(source.size, truth.length, 'virtual size');
  assert.equal(sha256(await source.read(0, source.size)), sha256(truth), 'whole-disk sha256');
  const rnd = prng(seed);
  const clusters = Math.floor(truth.length / clusterSize);
  const ranges: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    const boundary = Math.max(1, Math.floor(rnd() * clusters)) * clusterSize;
    const start = Math.max(0, boundary - 1 - Math.floor(rnd() * Math.min(clusterSize, 8192)));
    const length = Math.min(truth.length - start, 1 + Math.floor(rnd() * clusterSize * 2.5));
    ranges.push([start, length]);
  }
  // Concurrently, as the ext4 reader will.
  const got = await Promise.all(ranges.map(([s, l]) => source.read(s, l)));
  ranges.forEach(([s, l], i) => {
    assert.equal(sha256(got[i]), sha256(truth.subarray(s, s + l)), `range ${s}+${l}`);
  });
}

export async function rejectsWith(p: Promise<unknown>, errnoName: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof StrataError, `expected a StrataError, got ${String(err)}`);
    assert.equal(err.errnoName, errnoName, err.message);
    assert.match(err.message, message);
    return true;
  });
}
