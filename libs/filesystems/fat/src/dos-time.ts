/**
 * DOS date and time fields to Unix nanoseconds, as fs/fat/misc.c's
 * fat_time_fat2unix computes them — including its lenience: no field is
 * range-checked (hour 31, minute 63 and second 62 are added as they are;
 * month 0 counts as January, months 13–15 add no days; day 0 counts as the
 * 1st). The time zone offset is 0: the kernel's default is the system time
 * zone (sys_tz), which is UTC unless something set it.
 */
const DAYS_BEFORE_MONTH = [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 0, 0, 0];
/** Days from 1970-01-01 to 1980-01-01. */
const DAYS_DELTA = 365 * 10 + 2;
/** 2100 - 1980: the one year of the range divisible by 4 that is no leap year. */
const YEAR_2100 = 120;
const SECS_PER_DAY = 86400;

export function dosTimeToNs(time: number, date: number, centiseconds = 0): bigint {
  const year = date >> 9;
  const month = Math.max(1, (date >> 5) & 0xf);
  const day = Math.max(1, date & 0x1f) - 1;
  let leapDays = Math.floor((year + 3) / 4);
  if (year > YEAR_2100) leapDays--;
  if ((year & 3) === 0 && year !== YEAR_2100 && month > 2) leapDays++;
  let seconds = (time & 0x1f) << 1;
  seconds += ((time >> 5) & 0x3f) * 60;
  seconds += (time >> 11) * 3600;
  seconds += (year * 365 + leapDays + (DAYS_BEFORE_MONTH[month] ?? 0) + day + DAYS_DELTA) * SECS_PER_DAY;
  const extraSeconds = Math.floor(centiseconds / 100);
  const nanos = (centiseconds % 100) * 10_000_000;
  return BigInt(seconds + extraSeconds) * 1_000_000_000n + BigInt(nanos);
}
