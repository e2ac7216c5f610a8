// Where a codec writes a body once it knows its length. By default a Buffer of its own (a
// cache may keep it, or a thread may be handed it, without sharing Node's pool); a build
// worker passes one that places the body inside the batch's disk value, which saves copying
// every body once more.
export type AllocateBody = (bytes: number) => Buffer

export function ownBuffer (bytes: number): Buffer {
  return Buffer.allocUnsafeSlow(bytes)
}
