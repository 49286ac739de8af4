import type { Found } from '../probe-result';
import type { SignatureReader } from '../signature-reader';

/** One family of signatures, probed as libblkid probes it. */
export interface Signature {
  name: string;
  probe(r: SignatureReader): Promise<Found | undefined>;
}
