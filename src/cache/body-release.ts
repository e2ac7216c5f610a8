// Frees the memory of batch bodies the caches let go of as soon as nothing can still send
// them, instead of at V8's next major collection.
//
// Why: a body lives outside the JS heap, in an ArrayBuffer's backing store, and is freed only
// when the collector finds its Buffer dead. A body that lived long enough to be promoted (a
// memory-tier entry; a disk-tier read held while its socket drains) waits for a major
// collection, which V8 starts for external memory only every ~64 MiB and the memory tier's
// reclaimer (reclaim.ts) forces every sixteenth of the tier evicted. Each one marks the whole
// heap on every core: a disk-tier server with the memory tier off ran ~13 a second.
//
// How, safely: a retired body is detached (napi_detach_arraybuffer frees its memory at once,
// and every view of it then reads as empty) only once no holder can still use it.
// - HTTP requests. Each request the server takes holds a ticket of the current generation
//   until its response closes (its last byte written, or its connection gone). Retiring a
//   body starts a new generation; the body is freed once every ticket of its generation or
//   older is closed. A request that began later cannot reach it, as no cache holds it.
// - Other holders (the disk tier's write queue) pin the body until they are done with it.
// Only buffers adopted by their maker are ever detached: one whose memory is the body's
// alone (a disk-tier read, a build worker's reply, the memory tier's own copy). Anything
// else, and whatever would make the bodies waiting exceed `maxWaitingBytes` (behind a stuck
// request, say; one body alone may), is left to the collector: retire returns false and the
// caller falls back to the reclaimer.

export interface BodyReleaser {
  /** A request starts; close the ticket when its response closes. */
  open: () => number
  close: (ticket: number) => void
  /** Marks the buffer as the body's alone, so that it may be detached once retired. */
  adopt: (buffer: Buffer) => void
  /** A holder other than a request uses the body until unpin. */
  pin: (body: Buffer) => void
  unpin: (body: Buffer) => void
  /** The caches let go of the body; false when it is left to the collector. */
  retire: (body: Buffer) => boolean
  /** A cache holds the body again (a request that shared its read put it back): not freed. */
  keep: (body: Buffer) => void
  /** Bytes retired and not yet freed. */
  readonly waitingBytes: number
  /** Bodies freed early so far. */
  readonly freed: number
}

export interface BodyReleaserOptions {
  /** Detaches the buffer (the native addon's detachBuffer); undefined: nothing is freed early. */
  detach: ((buffer: ArrayBuffer) => boolean) | undefined
  maxWaitingBytes: number
  /** Hears the bytes of each body freed early. */
  onFreed?: (bytes: number) => void
}

export function createBodyReleaser (opts: BodyReleaserOptions): BodyReleaser {
  const { detach } = opts
  let generation = 0
  // Tickets open in the current generation: a plain count, as a request opens and closes one
  // and most requests see no retirement while they run.
  let current = 0
  // Older generations -> their open tickets; generations only grow, so the first key is the
  // oldest.
  const older = new Map<number, number>()
  // Retired buffer -> its generation, in the order retired (so, by generation).
  const retired = new Map<ArrayBuffer, number>()
  const adopted = new WeakSet<ArrayBuffer>()
  const pins = new Map<ArrayBuffer, number>()
  let waitingBytes = 0
  let freed = 0
  let sweepQueued = false

  function oldestOpen (): number {
    const first = older.keys().next()
    if (first.done !== true) return first.value
    return current > 0 ? generation : Infinity
  }

  function sweep (): void {
    sweepQueued = false
    const oldest = oldestOpen()
    for (const [buffer, g] of retired) {
      if (g >= oldest) break
      if (pins.has(buffer)) continue
      retired.delete(buffer)
      const bytes = buffer.byteLength
      waitingBytes -= bytes
      if (detach!(buffer)) {
        freed++
        opts.onFreed?.(bytes)
      }
    }
  }

  /** Counts one holder of `key` off; when none is left, what it held back may go. */
  function countDown<K> (counts: Map<K, number>, key: K): void {
    const n = counts.get(key)
    if (n === undefined) return
    if (n > 1) counts.set(key, n - 1)
    else {
      counts.delete(key)
      sweepSoon()
    }
  }

  /** Sweeps in a later turn of the event loop, never inside the caller's own steps. */
  function sweepSoon (): void {
    if (sweepQueued || retired.size === 0) return
    sweepQueued = true
    setImmediate(sweep)
  }

  return {
    open () {
      current++
      return generation
    },
    close (ticket) {
      if (ticket === generation) {
        if (current > 0 && --current === 0) sweepSoon()
        return
      }
      countDown(older, ticket)
    },
    adopt (buffer) {
      // Only a Buffer that spans its whole ArrayBuffer, and larger than Node's 8 KiB pool, which
      // holds many small Buffers at once.
      const ab = buffer.buffer as ArrayBuffer
      if (detach !== undefined && buffer.byteOffset === 0 && buffer.byteLength === ab.byteLength && ab.byteLength > Buffer.poolSize) adopted.add(ab)
    },
    pin (body) {
      const ab = body.buffer as ArrayBuffer
      pins.set(ab, (pins.get(ab) ?? 0) + 1)
    },
    unpin (body) {
      countDown(pins, body.buffer as ArrayBuffer)
    },
    retire (body) {
      const ab = body.buffer as ArrayBuffer
      if (!adopted.has(ab)) return false
      // One body at least, however large: its own request holds it in any case.
      if (waitingBytes > 0 && waitingBytes + ab.byteLength > opts.maxWaitingBytes) return false
      // Retired once: a second retire (the same body let go twice) must not count twice.
      adopted.delete(ab)
      retired.set(ab, generation)
      waitingBytes += ab.byteLength
      if (current > 0) older.set(generation, current)
      current = 0
      generation++
      sweepSoon()
      return true
    },
    keep (body) {
      const ab = body.buffer as ArrayBuffer
      if (!retired.delete(ab)) return
      waitingBytes -= ab.byteLength
      adopted.add(ab)
    },
    get waitingBytes () { return waitingBytes },
    get freed () { return freed }
  }
}
