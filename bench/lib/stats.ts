// Small statistics helpers: medians and percentiles of plain samples, and unit formatting.
export const MiB = 1024 * 1024

/** The middle sample (the mean of the two middle ones for an even count); NaN for none. */
export function median (xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples; NaN for none. */
export function percentile (xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN
  const sorted = [...xs].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank] as number
}

export function fmt (x: number, digits = 1): string {
  if (!Number.isFinite(x)) return 'n/a'
  if (Math.abs(x) >= 10000) return Math.round(x).toLocaleString('en-US')
  return x.toFixed(digits)
}

/** A ratio with 3 significant digits (0.496x, not 0.50x, so a miss never reads as a hit). */
export function fmtRatio (x: number): string {
  return Number.isFinite(x) ? `${x.toPrecision(3)}x` : 'n/a'
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
