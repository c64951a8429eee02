/** Sending many files into one job: which files are images, folders dropped, batches. */
import { addFiles, cancelJob, closeJob, createJob } from './api'
import type { FileAnswer, Picked } from './types'

const IMAGE_SUFFIX = /\.(jpe?g|png|gif|bmp|tiff?|webp)$/i
/** Room left in a batch for each part's multipart framing. */
const PART_OVERHEAD = 512

/** The same rule as sd-submit's: images are known by their suffix. */
export const isImageName = (name: string): boolean => IMAGE_SUFFIX.test(name)

/** Files picked with an input (a folder input gives each file's path inside the folder). */
export const pickedFromList = (list: FileList | File[]): Picked[] =>
  Array.from(list).map((file) => ({ file, name: file.webkitRelativePath || file.name }))

function readEntries(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject))
}

async function walkEntry(entry: FileSystemEntry, into: Picked[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject))
    into.push({ file, name: entry.fullPath.replace(/^\/+/, '') })
  } else if (entry.isDirectory) {
    const reader = (entry as FileSystemDirectoryEntry).createReader()
    // readEntries answers a page at a time (100 in Chrome) until it answers none.
    for (let page = await readEntries(reader); page.length; page = await readEntries(reader)) {
      for (const child of page) await walkEntry(child, into)
    }
  }
}

/** Everything dropped: files, and the files inside dropped folders with their paths. */
export async function pickedFromDrop(data: DataTransfer): Promise<Picked[]> {
  const entries = Array.from(data.items ?? [])
    .map((item) => item.webkitGetAsEntry?.())
    .filter((entry): entry is FileSystemEntry => Boolean(entry))
  if (!entries.length) return pickedFromList(data.files)
  const picked: Picked[] = []
  for (const entry of entries) await walkEntry(entry, picked)
  return picked
}

/** Batches within the coordinator's limits: at most `maxFiles` files and `maxBytes` each. */
export function batches(files: Picked[], maxBytes: number, maxFiles: number): Picked[][] {
  const out: Picked[][] = []
  let batch: Picked[] = []
  let size = 0
  for (const picked of files) {
    const cost = picked.file.size + picked.name.length * 4 + PART_OVERHEAD
    if (batch.length && (size + cost > maxBytes || batch.length >= maxFiles)) {
      out.push(batch)
      batch = []
      size = 0
    }
    batch.push(picked)
    size += cost
  }
  if (batch.length) out.push(batch)
  return out
}

export interface Sending {
  jobId: string
  sent: number
  total: number
}

export interface Sent {
  jobId: string
  tasks: number
  rejected: FileAnswer[]
}

/** Batches in flight at once: the coordinator stores one while the next crosses the network. */
export const PARALLEL_BATCHES = 3

/** Create a job, send the files in batches, a few at once (`onProgress` after each), then
 * close it; a job that took no file at all is cancelled, so it does not read as done. A failed
 * batch stops the sending (the first error is thrown once the batches in flight end) and the
 * job is closed with what it took. */
export async function sendFiles(
  files: Picked[],
  ops: string,
  copies: number,
  onStart: (jobId: string) => void,
  onProgress: (progress: Sending) => void,
): Promise<Sent> {
  const name = files.length === 1 ? files[0].name : `${files[0].name} +${files.length - 1}`
  const job = await createJob(ops, copies, name.slice(0, 200))
  onStart(job.job_id)
  onProgress({ jobId: job.job_id, sent: 0, total: files.length })
  const rejected: FileAnswer[] = []
  const waiting = batches(files, job.max_upload_bytes, job.max_files)
  let tasks = 0
  let sent = 0
  let failed = false
  let failure: unknown
  const lane = async () => {
    for (let batch = waiting.shift(); batch && !failed; batch = waiting.shift()) {
      try {
        const answer = await addFiles(job.job_id, batch)
        tasks += answer.tasks
        rejected.push(...answer.files.filter((f) => f.status === 'rejected'))
        sent += batch.length
        onProgress({ jobId: job.job_id, sent, total: files.length })
      } catch (error) {
        if (!failed) [failed, failure] = [true, error]
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(PARALLEL_BATCHES, waiting.length) }, lane))
    if (failed) throw failure
  } finally {
    await (tasks ? closeJob(job.job_id) : cancelJob(job.job_id)).catch(() => undefined)
  }
  return { jobId: job.job_id, tasks, rejected }
}
