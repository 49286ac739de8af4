import { Errno, StrataError } from '@strata/errors';
import { addon } from './native';

/**
 * Tells the service manager about this process (sd_notify(3)): "READY=1"
 * when a Type=notify unit is up, "STOPPING=1", "STATUS=...". Does nothing
 * (false) when $NOTIFY_SOCKET is unset: not started by systemd, or not as
 * a notify service. A socket that refuses the datagram is a StrataError.
 */
export function sdNotify(fields: Readonly<Record<string, string | number>>, socketPath: string | undefined = process.env.NOTIFY_SOCKET): boolean {
  if (socketPath === undefined || socketPath === '') return false;
  const text = Object.entries(fields)
    // A value spans one line: a newline would start a field of its own.
    .map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`)
    .join('\n');
  try {
    addon().sdNotify(socketPath, text);
    return true;
  } catch (err) {
    const errno = typeof (err as { errno?: unknown }).errno === 'number' ? (err as { errno: number }).errno : Errno.EIO;
    throw new StrataError(errno, `${socketPath}: ${(err as Error).message}`, { cause: err });
  }
}
