/**
 * Times of the protocol: one RFC 3339 profile, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, in UTC between
 * 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z after the offset. Date.parse is not used: it takes other forms.
 */

/** A moment as whole seconds since 1970 (negative before) and nanoseconds; exact for years 1 to 9999. */
export interface Instant {
  readonly seconds: number;
  readonly nanos: number;
}

const PROFILE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;
const EARLIEST = daysFromCivil(1, 1, 1) * 86400;
const LATEST = daysFromCivil(9999, 12, 31) * 86400 + 86399;

function daysFromCivil(y: number, m: number, d: number): number {
  // Howard Hinnant's days_from_civil: proleptic Gregorian, exact for every year here.
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

/** The instant `text` names, or null when it is not in the profile or out of range. */
export function parseTime(text: unknown): Instant | null {
  if (typeof text !== "string") return null;
  const m = PROFILE.exec(text);
  if (m === null) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number, number, number, number, number, number,
  ];
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  let offset = 0;
  const zone = m[8] as string;
  if (zone !== "Z") {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 23 || om > 59) return null;
    offset = (zone[0] === "-" ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const nanos = Number((m[7] ?? "").padEnd(9, "0"));
  const seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
  if (seconds < EARLIEST || seconds > LATEST || (seconds === LATEST && nanos > 0)) return null;
  return { seconds, nanos };
}

/** Negative, zero or positive as `a` is before, at or after `b`. */
export function compareTime(a: Instant, b: Instant): number {
  return a.seconds !== b.seconds ? a.seconds - b.seconds : a.nanos - b.nanos;
}
