// Gives memory of evicted batches back sooner than V8 would on its own: for the bodies that
// body-release.ts cannot free at once (not adopted, or too many waiting behind a request).
//
// A batch body lives outside the JS heap (an ArrayBuffer backing store), and it is only freed
// when the garbage collector finds its Buffer dead. A memory-tier entry lives long enough to
// reach the old generation, so once evicted it waits for a major collection, and V8 starts one
// for external memory only after it has grown ~64 MiB past the last collection. A tier that
// churns (random access over more data than it holds) would then carry up to that much dead
// bytes on top of its bound, and glibc spreads them over its heap. Counting the bytes the tier
// drops and asking for an asynchronous major collection every `thresholdBytes` keeps that
// surplus small. Short-lived bodies (disk-tier reads, builds that are not cached) die young
// and are freed by the frequent minor collections, so they are not counted.
//
// Freed, the bodies leave holes inside glibc's heaps, which stay resident; after each such
// collection (at most once a second) malloc_trim gives their pages back (src/native/memory.c).
import { runInNewContext } from 'node:vm'
import { setFlagsFromString } from 'node:v8'
import { nativeAddon } from '../native/addon.js'

const TRIM_INTERVAL_MS = 1000

type GcFunction = (options?: { type?: 'major' | 'minor', execution?: 'sync' | 'async' }) => Promise<void> | undefined

export interface Reclaimer {
  /** `bytes` of long-lived buffers just became garbage. */
  released: (bytes: number) => void
  /** Major collections asked for so far. */
  readonly collections: number
}

let gcFunction: GcFunction | null | undefined

// `gc` as `node --expose-gc` would give it, without asking every way of starting the server
// (npm start, the image, tests) for the flag: the flag only adds a global to new contexts.
function exposedGc (): GcFunction | null {
  if (gcFunction !== undefined) return gcFunction
  const existing = (globalThis as { gc?: GcFunction }).gc
  if (typeof existing === 'function') {
    gcFunction = existing
    return gcFunction
  }
  try {
    setFlagsFromString('--expose-gc')
    const fn = runInNewContext('gc') as unknown
    gcFunction = typeof fn === 'function' ? fn as GcFunction : null
  } catch {
    gcFunction = null
  }
  return gcFunction
}

/**
 * malloc_trim, at most once per TRIM_INTERVAL_MS; a no-op without the addon. Called after
 * memory was freed: after a collection here, and as body-release.ts frees bodies.
 */
export function createTrimmer (): () => void {
  const native = nativeAddon()
  if ('error' in native) return () => {}
  let last = 0
  return () => {
    const now = performance.now()
    if (now - last < TRIM_INTERVAL_MS) return
    last = now
    native.addon.mallocTrim()
  }
}

export function createReclaimer (thresholdBytes: number): Reclaimer {
  const gc = thresholdBytes > 0 ? exposedGc() : null
  const trim = gc !== null ? createTrimmer() : () => {}
  let pending = 0
  let running = false
  let collections = 0
  return {
    released (bytes) {
      if (gc === null) return
      pending += bytes
      if (pending < thresholdBytes || running) return
      pending = 0
      running = true
      collections++
      // Asynchronous: V8 marks incrementally between tasks instead of pausing every request.
      Promise.resolve(gc({ type: 'major', execution: 'async' }))
        .then(trim, () => {})
        .finally(() => { running = false })
    },
    get collections () { return collections }
  }
}
