/** Small display helpers shared by the components. */

export const shortId = (id: string): string => id.slice(0, 8)

export function formatPercent(value: number): string {
  return `${Math.round(clamp(value, 0, 100))} %`
}

export function formatRate(mbPerS: number): string {
  if (mbPerS >= 100) return `${mbPerS.toFixed(0)} MB/s`
  if (mbPerS >= 10) return `${mbPerS.toFixed(1)} MB/s`
  return `${mbPerS.toFixed(2)} MB/s`
}

export function formatTps(tps: number): string {
  return tps >= 100 ? tps.toFixed(0) : tps.toFixed(1)
}

/** A short age: "12 s", "3 min", "5 h", "2 d". */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min`
  if (s < 86400) return `${Math.floor(s / 3600)} h`
  return `${Math.floor(s / 86400)} d`
}

export function formatClock(unixSeconds: number, lang: string): string {
  return new Date(unixSeconds * 1000).toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit', second: '2-digit' })
}

export function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value))
}

export function percentDone(done: number, total: number): number {
  return total > 0 ? Math.round((100 * done) / total) : 0
}
