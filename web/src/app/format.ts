// How values read on screen: money from Decimal strings, times, durations and labels.

const moneyFormats = new Map<string, Intl.NumberFormat>();

/** Formats a Decimal string exactly: Intl accepts numeric strings, so no float rounding. */
export function money(amount: string, currency: string): string {
  let format = moneyFormats.get(currency);
  if (!format) {
    try {
      format = new Intl.NumberFormat("en-US", { style: "currency", currency });
    } catch {
      return `${amount} ${currency}`; // not an ISO 4217 code Intl knows
    }
    moneyFormats.set(currency, format);
  }
  return format.format(amount as Intl.StringNumericLiteral);
}

const dateTimeFormat = new Intl.DateTimeFormat("en-GB", {
  year: "numeric",
  month: "short",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export function dateTime(iso: string): string {
  return dateTimeFormat.format(new Date(iso));
}

const units: [Intl.RelativeTimeFormatUnit, number][] = [
  ["day", 86_400_000],
  ["hour", 3_600_000],
  ["minute", 60_000],
  ["second", 1_000],
];
const relativeFormat = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

export function relative(iso: string, now = Date.now()): string {
  const delta = new Date(iso).getTime() - now;
  for (const [unit, size] of units) {
    if (Math.abs(delta) >= size || unit === "second") return relativeFormat.format(Math.round(delta / size), unit);
  }
  return "";
}

/** A compact, always positive duration such as "3 h 12 min" or "450 ms". */
export function duration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1_000) return `${Math.round(abs)} ms`;
  if (abs < 60_000) return `${(abs / 1_000).toFixed(1)} s`;
  const parts: string[] = [];
  let rest = Math.round(abs / 60_000);
  for (const [unit, size] of [
    ["d", 1_440],
    ["h", 60],
    ["min", 1],
  ] as const) {
    const count = Math.floor(rest / size);
    if (count > 0) parts.push(`${count} ${unit}`);
    rest -= count * size;
  }
  return parts.slice(0, 2).join(" ");
}

/** "PAYMENT_AUTHORIZED" → "Payment authorized". */
export function humanize(constant: string): string {
  const words = constant.toLowerCase().split("_");
  return [words[0].charAt(0).toUpperCase() + words[0].slice(1), ...words.slice(1)].join(" ");
}

/** "PaymentCaptureReversed" → "Payment capture reversed". */
export function splitPascal(name: string): string {
  return humanize(name.replace(/(?<=[a-z])(?=[A-Z])/g, "_").toUpperCase());
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}
