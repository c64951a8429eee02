/** Versions of the coordinator and its workers: a worker on another release line is flagged. */

/** Major and minor of a version ("0.1.3" -> [0, 1]); null when it has none. */
export function releaseLine(version: string | null | undefined): [number, number] | null {
  const match = /^(\d+)\.(\d+)/.exec(version ?? '')
  return match ? [Number(match[1]), Number(match[2])] : null
}

/** A worker whose major or minor differs from the coordinator's, or that does not say
 * (workers before version reporting). False while the coordinator's own is not known. */
export function versionSkew(worker: string | null | undefined, coordinator: string | null | undefined): boolean {
  const ours = releaseLine(coordinator)
  if (ours === null) return false
  const theirs = releaseLine(worker)
  return theirs === null || theirs[0] !== ours[0] || theirs[1] !== ours[1]
}
